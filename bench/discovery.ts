// `npm run bench:discovery`: the discovery subgraph on SQLite in this process, spoken to over HTTP
// as the gateway does (signed identity), with N agents in its read model (skills from a vocabulary
// of 60 tags, descriptions from 1,000 words, heartbeats of every age) and 2 tasks per agent in
// orchestration's states. Times matchAgents at the subgraph for four kinds of need, one at a time
// and then 8 at once, and prints a Markdown table (bench/README.md, "Discovery").
//
//   npm run bench:discovery                      10,000 agents, 200 queries per kind
//   npm run bench:discovery -- --agents 50000 --queries 100
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Kysely } from 'kysely';
import { DEFAULT_TENANT } from '../runtime/context.ts';
import { createIdentityService, loadIdentityConfig, PLATFORM_SCOPES } from '../runtime/identity.ts';
import { startSubgraph } from '../runtime/subgraph.ts';
import type { AgentProfile } from '../subgraphs/discovery/domain.ts';
import { discovery } from '../subgraphs/discovery/index.ts';
import { encodeProfile, type DiscoveryDB } from '../subgraphs/discovery/store.ts';

interface Options {
  agents: number;
  queries: number;
}

function parseOptions(argv: string[]): Options {
  const options: Options = { agents: 10_000, queries: 200 };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]?.replace(/^--/, '');
    const value = Number(argv[i + 1]);
    if (!(name === 'agents' || name === 'queries') || !Number.isInteger(value) || value < 1) {
      throw new Error('usage: npm run bench:discovery -- [--agents 10000] [--queries 300]');
    }
    options[name] = value;
  }
  return options;
}

/** A seeded generator, so runs compare. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

const MATCH = `query($need: AgentNeed!) { matchAgents(need: $need) { agentId score parts { skills text health load success } explanation } }`;

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const rand = random(7);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const tags = Array.from({ length: 60 }, (_, i) => `tag${i}`);
  const words = Array.from({ length: 1000 }, (_, i) => `word${i}`);
  const sentence = (n: number) => Array.from({ length: n }, () => pick(words)).join(' ');

  const dataDir = mkdtempSync(join(tmpdir(), 'bench-discovery-'));
  const env = {
    ...process.env,
    DISCOVERY_PORT: '0',
    DATA_DIR: dataDir,
    DATABASE_URL: '',
    REDIS_URL: '',
    LOG_LEVEL: 'warn',
    DISCOVERY_CHECK_INTERVAL_MS: '3600000',
    DISCOVERY_PROFILE_REFRESH_SECONDS: '86400',
  };
  const running = await startSubgraph(discovery, env);
  const identity = createIdentityService(loadIdentityConfig(env));
  const call = async (need: Record<string, unknown>) => {
    const token = await identity.signIdentity(
      { kind: 'user', subject: 'bench', tenantId: DEFAULT_TENANT, scopes: PLATFORM_SCOPES, agentId: null },
      'discovery',
    );
    const res = await fetch(running.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-gateway-identity': token },
      body: JSON.stringify({ query: MATCH, variables: { need } }),
    });
    const body = (await res.json()) as { data?: { matchAgents: unknown[] }; errors?: unknown[] };
    if (body.errors) throw new Error(JSON.stringify(body.errors).slice(0, 500));
    return body.data?.matchAgents ?? [];
  };

  try {
    const db = running.database.db as Kysely<DiscoveryDB>;
    const now = Date.now();
    const started = performance.now();
    const ids: string[] = [];
    for (let i = 0; i < options.agents; i += 500) {
      const rows = [];
      for (let j = i; j < Math.min(options.agents, i + 500); j++) {
        const agentTags = [pick(tags), pick(tags), pick(tags)];
        const p: AgentProfile = {
          tenantId: DEFAULT_TENANT,
          agentId: randomUUID(),
          name: `Agent ${j}`,
          description: sentence(12),
          agentVersion: '1.0.0',
          endpointUrl: `https://agents.example.com/${j}`,
          provider: null,
          capabilities: { streaming: false, pushNotifications: false },
          skills: [0, 1].map((k) => ({
            id: `skill-${j}-${k}`,
            name: sentence(2),
            description: sentence(6),
            tags: agentTags.slice(k, k + 2),
            examples: [],
            inputModes: [],
            outputModes: [],
          })),
          labels: [{ key: 'region', value: pick(['eu', 'us', 'ap']) }],
          defaultInputModes: ['text/plain'],
          defaultOutputModes: ['text/plain'],
          status: rand() < 0.9 ? 'ACTIVE' : 'PAUSED',
          heartbeatIntervalSeconds: 30,
          lastHeartbeatAt: new Date(now - Math.floor(rand() * 300_000)).toISOString(),
          syncedAt: new Date(now).toISOString(),
        };
        ids.push(p.agentId);
        rows.push({
          tenant_id: p.tenantId,
          agent_id: p.agentId,
          profile: encodeProfile(p),
          status: p.status,
          last_heartbeat_at: p.lastHeartbeatAt,
          synced_at: p.syncedAt,
          revision: 1,
          // Recorded a minute ago, as a steady state: the background refresh reads only what changes.
          changed_at: new Date(now - 60_000).toISOString(),
          beat_recorded_at: new Date(now - 60_000).toISOString(),
        });
      }
      await db.insertInto('agent_profiles').values(rows).execute();
    }
    const states = ['ASSIGNED', 'WORKING', 'COMPLETED', 'COMPLETED', 'FAILED', 'CANCELED'];
    for (let i = 0; i < ids.length * 2; i += 500) {
      const rows = Array.from({ length: Math.min(500, ids.length * 2 - i) }, () => ({
        tenant_id: DEFAULT_TENANT,
        task_id: randomUUID(),
        agent_id: pick(ids),
        state: pick(states),
        updated_at: new Date(now).toISOString(),
        recorded_at: new Date(now - 60_000).toISOString(),
      }));
      await db.insertInto('agent_tasks').values(rows).execute();
    }
    const seededMs = performance.now() - started;

    const kinds: Record<string, () => Record<string, unknown>> = {
      'skills (2 tags)': () => ({ skills: [pick(tags), pick(tags)], limit: 10 }),
      'text (3 words)': () => ({ text: sentence(3), limit: 10 }),
      'skills + text + region + minHealth': () => ({ skills: [pick(tags)], text: sentence(2), region: 'eu', minHealth: 'STALE', limit: 10 }),
      'skills, requireAll, limit 100': () => ({ skills: [pick(tags), pick(tags)], requireAllSkills: true, limit: 100 }),
    };
    // Warm-up: builds the tenant's index (measured on its own) and JIT-compiles the path.
    const first = performance.now();
    await call({ skills: ['tag1'] });
    const indexBuildMs = performance.now() - first;
    for (let i = 0; i < 50; i++) await call(kinds['skills (2 tags)']!());

    const rows: string[] = [];
    for (const [kind, need] of Object.entries(kinds)) {
      const times: number[] = [];
      let results = 0;
      const cpu = process.cpuUsage();
      for (let i = 0; i < options.queries; i++) {
        const t0 = performance.now();
        results += (await call(need())).length;
        times.push(performance.now() - t0);
      }
      const used = process.cpuUsage(cpu);
      times.sort((a, b) => a - b);
      rows.push(
        `| ${kind} | 1 | ${percentile(times, 50).toFixed(1)} | ${percentile(times, 99).toFixed(1)} | ${(times[times.length - 1] ?? 0).toFixed(1)} | ${((used.user + used.system) / 1000 / options.queries).toFixed(1)} | ${(results / options.queries).toFixed(1)} |`,
      );
    }
    // 8 clients at once, all kinds mixed: what a busy gateway sends.
    const concurrent: number[] = [];
    const mixed = Object.values(kinds);
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = 0; i < Math.ceil(options.queries / 2); i++) {
          const t0 = performance.now();
          await call(pick(mixed)());
          concurrent.push(performance.now() - t0);
        }
      }),
    );
    concurrent.sort((a, b) => a - b);
    rows.push(
      `| mixed | 8 | ${percentile(concurrent, 50).toFixed(1)} | ${percentile(concurrent, 99).toFixed(1)} | ${(concurrent[concurrent.length - 1] ?? 0).toFixed(1)} | | |`,
    );

    console.log(
      `\nDiscovery: ${options.agents.toLocaleString('en')} agents, ${(options.agents * 2).toLocaleString('en')} tasks (seeded in ${(seededMs / 1000).toFixed(1)} s); first match (index build) ${indexBuildMs.toFixed(0)} ms\n`,
    );
    console.log(
      `(load average ${os.loadavg()[0]?.toFixed(1)} on ${os.cpus().length} cores; CPU ms/query is this process's CPU, the client's requests included)\n`,
    );
    console.log('| need | concurrent | p50 ms | p99 ms | max ms | CPU ms/query | matches/query |');
    console.log('|---|---|---|---|---|---|---|');
    for (const r of rows) console.log(r);
  } finally {
    await running.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
