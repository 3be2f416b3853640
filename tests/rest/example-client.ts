import type { components, paths } from '../../gateway/rest/generated/openapi-types.ts';

type Agent = components['schemas']['Agent'];
/** An agent as registered: with `credential`, its own API key when asked for (else null). */
type RegisteredAgent = components['schemas']['RegisteredAgent'];
type Problem = components['schemas']['Problem'];
type NewAgent = paths['/v1/agents']['post']['requestBody']['content']['application/json'];
type AgentFilter = Omit<NonNullable<paths['/v1/agents']['get']['parameters']['query']>, 'after' | 'first'>;
type AgentPage = paths['/v1/agents']['get']['responses'][200]['content']['application/json'];

export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(`${problem.status} ${problem.code}: ${problem.detail}`);
  }
}

export function agentsClient(baseUrl: string, headers: Record<string, string> = {}) {
  async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) throw new ApiError((await res.json()) as Problem);
    return (await res.json()) as T;
  }

  return {
    register: (input: NewAgent, options: { issueCredential?: boolean } = {}) =>
      call<RegisteredAgent>('POST', `/v1/agents${options.issueCredential ? '?issueCredential=true' : ''}`, input),
    get: (id: string) => call<Agent>('GET', `/v1/agents/${encodeURIComponent(id)}`),
    activate: (id: string) => call<Agent>('POST', `/v1/agents/${encodeURIComponent(id)}/activate`),
    /** Every agent matching the filter, following the cursor page by page. */
    async *list(filter: AgentFilter = {}, pageSize = 50): AsyncGenerator<Agent> {
      const query = new URLSearchParams({ first: String(pageSize) });
      if (filter.status) query.set('status', filter.status);
      if (filter.skillTag) query.set('skillTag', filter.skillTag);
      if (filter.text) query.set('text', filter.text);
      if (filter.label) {
        query.set('label[key]', filter.label.key);
        if (filter.label.value) query.set('label[value]', filter.label.value);
      }
      for (;;) {
        const page = await call<AgentPage>('GET', `/v1/agents?${query}`);
        yield* page.nodes;
        if (!page.pageInfo.hasNextPage || !page.pageInfo.endCursor) return;
        query.set('after', page.pageInfo.endCursor);
      }
    },
  };
}
