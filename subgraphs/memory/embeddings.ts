// Embeddings from a provider speaking the OpenAI-compatible `POST /v1/embeddings` API (vLLM,
// Ollama, TEI, LocalAI and hosted services do): texts in, one vector per text out. Optional: with
// no EMBEDDINGS_URL the subgraph stores and searches the vectors clients supply.
import { env, loadConfig } from '../../runtime/config.ts';
import { domainError } from '../../runtime/errors.ts';
import type { Logger } from '../../runtime/logger.ts';

export const embeddingsSpec = {
  EMBEDDINGS_URL: env.url('base URL of an OpenAI-compatible embeddings API, e.g. http://127.0.0.1:11434/v1 (POST <url>/embeddings)', ['http', 'https']),
  EMBEDDINGS_MODEL: env.string('model asked of the embeddings API', 'text-embedding-3-small'),
  EMBEDDINGS_API_KEY: env.optionalString('bearer token for the embeddings API'),
  EMBEDDINGS_TIMEOUT_MS: env.int('longest wait for one embeddings request, in milliseconds', 10_000, 1),
  EMBEDDINGS_BATCH_SIZE: env.int('texts per embeddings request', 64, 1),
};

export interface Embedder {
  /** The model that makes the vectors (recorded with each memory it embeds). */
  readonly model: string;
  /** One vector per text, in order. */
  embed(texts: string[]): Promise<number[][]>;
}

const RETRIES = 3;

/** The provider failed or answered something that is not embeddings: nothing was written. */
export const embeddingsUnavailable = (reason: string) =>
  domainError('EMBEDDINGS_UNAVAILABLE', `The embeddings provider could not embed the text: ${reason}`, { reason });

export function createEmbedder(source: Record<string, string | undefined>, logger: Logger, fetchImpl: typeof fetch = fetch): Embedder | null {
  const config = loadConfig(embeddingsSpec, source);
  if (!config.EMBEDDINGS_URL) return null;
  const endpoint = `${config.EMBEDDINGS_URL.replace(/\/+$/, '')}/embeddings`;
  const model = config.EMBEDDINGS_MODEL;

  async function once(texts: string[]): Promise<number[][]> {
    const res = await fetchImpl(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(config.EMBEDDINGS_API_KEY ? { authorization: `Bearer ${config.EMBEDDINGS_API_KEY}` } : {}) },
      body: JSON.stringify({ model, input: texts }),
      signal: AbortSignal.timeout(config.EMBEDDINGS_TIMEOUT_MS),
    });
    if (!res.ok) throw Object.assign(new Error(`HTTP ${res.status}`), { retry: res.status === 429 || res.status >= 500 });
    const body = (await res.json()) as { data?: { embedding?: unknown; index?: unknown }[] };
    const data = Array.isArray(body.data) ? body.data : [];
    if (data.length !== texts.length) throw Object.assign(new Error(`${data.length} embeddings for ${texts.length} texts`), { retry: false });
    const vectors: number[][] = new Array(texts.length);
    data.forEach((item, i) => {
      const index = typeof item.index === 'number' ? item.index : i;
      const e = item.embedding;
      if (!Array.isArray(e) || e.length === 0 || !e.every((x) => typeof x === 'number' && Number.isFinite(x))) {
        throw Object.assign(new Error('an embedding is not a list of finite numbers'), { retry: false });
      }
      vectors[index] = e as number[];
    });
    const dimension = vectors[0]?.length;
    if (!vectors.every((v) => v?.length === dimension)) throw Object.assign(new Error('embeddings of different dimensions'), { retry: false });
    return vectors;
  }

  async function withRetries(texts: string[]): Promise<number[][]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await once(texts);
      } catch (err) {
        const retry = (err as { retry?: boolean }).retry !== false;
        const reason = err instanceof Error ? err.message : String(err);
        if (!retry || attempt >= RETRIES) throw embeddingsUnavailable(reason);
        logger.warn({ err, attempt }, 'embeddings request failed; retrying');
        // 200 ms, 400 ms: short, because a request is waiting on the answer.
        await new Promise((r) => setTimeout(r, 200 * 2 ** (attempt - 1)));
      }
    }
  }

  return {
    model,
    async embed(texts) {
      const out: number[][] = [];
      for (let i = 0; i < texts.length; i += config.EMBEDDINGS_BATCH_SIZE) out.push(...(await withRetries(texts.slice(i, i + config.EMBEDDINGS_BATCH_SIZE))));
      return out;
    },
  };
}
