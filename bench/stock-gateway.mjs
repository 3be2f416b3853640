// The baseline: stock @apollo/gateway in @apollo/server's standalone server, default settings.
// Plain JavaScript run by plain `node`, as the stock gateway is deployed: no TypeScript loader and
// no source maps in its process (with them, agent-base's stack-trace check alone costs it ~5 %).
// It serves SUPERGRAPH_PATH as it is; bench/run.ts writes that file from the composed supergraph
// with the two edits an operator of the stock gateway has to make too (see stock-supergraph.ts).
//   STOCK_PORT=4100 SUPERGRAPH_PATH=/tmp/stock-supergraph.graphql node bench/stock-gateway.mjs
import { readFileSync } from 'node:fs';
import { ApolloGateway } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';

const port = Number(process.env.STOCK_PORT ?? 4100);
const supergraphSdl = readFileSync(process.env.SUPERGRAPH_PATH ?? 'schema/supergraph.graphql', 'utf8');

const server = new ApolloServer({ gateway: new ApolloGateway({ supergraphSdl }) });
const { url } = await startStandaloneServer(server, { listen: { port, host: '127.0.0.1' } });
console.log(`stock @apollo/gateway ready at ${url}`);
