// The supergraph as stock @apollo/gateway gets it: the same composed file with the two edits an
// operator of the stock gateway would have to make too. The subgraphs' routing URLs point to where
// the benchmark started them, and the access-control links lose their `for: SECURITY` purpose
// (toGatewaySupergraph, the function our gateway applies too), without which @apollo/gateway
// refuses to load the supergraph at all.
import { toGatewaySupergraph } from '../gateway/auth/supergraph-policy.ts';

/** Replaces url: "…" in each @join__graph(name: "x", …) with urls[x] when given. */
export function withSubgraphUrls(supergraphSdl: string, urls: Record<string, string>): string {
  return supergraphSdl.replace(/@join__graph\(name: "([^"]+)", url: "[^"]*"\)/g, (whole, name: string) => {
    const url = urls[name];
    return url ? `@join__graph(name: "${name}", url: "${url}")` : whole;
  });
}

export function stockSupergraph(composedSdl: string, urls: Record<string, string>): string {
  return toGatewaySupergraph(withSubgraphUrls(composedSdl, urls));
}
