// Traversals of the knowledge graph, always bounded. Expansion is one recursive CTE (the same SQL
// on SQLite and PostgreSQL; `union` keeps one row per (entity, depth), so cycles end at the depth
// bound) read breadth-first and cut at the node bound. Shortest paths go one hop per query over
// the same indexes: a bidirectional breadth-first search (unweighted) or a hop-bounded
// Bellman-Ford from the source (weighted; weights are never negative).
import { sql } from 'kysely';
import { graphLimit, MAX_PATH_EDGES, type Direction, type ExpandRequest, type PathRequest } from './domain.ts';
import {
  decodeRelation,
  existed,
  isReadable,
  validAt,
  type EntityRow,
  type GraphPathRow,
  type GraphResultRow,
  type GraphStore,
  type Readable,
} from './store.ts';

export async function expand(store: GraphStore, tenantId: string, req: ExpandRequest, readable: Readable): Promise<GraphResultRow> {
  const starts = [
    ...new Set(
      await store.resolve(
        store.db,
        tenantId,
        req.from.map((ref, i) => ({ ref, field: `input.from[${i}]` })),
      ),
    ),
  ];
  // A node appears at most once per depth: this many rows hold maxNodes + 1 distinct ones, or all.
  const rows = (req.maxNodes + 1) * (req.depth + 1);
  const next =
    req.direction === 'OUT'
      ? sql`r.target_id`
      : req.direction === 'IN'
        ? sql`r.source_id`
        : sql`case when r.source_id = reach.id then r.target_id else r.source_id end`;
  const join =
    req.direction === 'OUT'
      ? sql`r.source_id = reach.id`
      : req.direction === 'IN'
        ? sql`r.target_id = reach.id`
        : sql`(r.source_id = reach.id or r.target_id = reach.id)`;
  const relationTypes = req.relationTypes ? sql` and r.type in (${sql.join(req.relationTypes)})` : sql``;
  // An agent caller walks only through entities it may read; entity types narrow the walk too.
  const conditions = [...(req.entityTypes ? [sql`e.type in (${sql.join(req.entityTypes)})`] : []), ...(readable === null ? [] : [namespaceIn(readable)])];
  const entityTypes = conditions.length > 0 ? sql` join graph_entities e on e.id = ${next} and ${sql.join(conditions, sql` and `)}` : sql``;
  // SQLite stops the recursion itself at a LIMIT; PostgreSQL has none there but computes only the rows the outer LIMIT reads.
  const innerLimit = store.dialect === 'sqlite' ? sql` limit ${rows}` : sql``;
  const result = await sql<{ id: string; depth: number }>`
    with recursive reach(id, depth) as (
      select id, 0 from graph_entities where tenant_id = ${tenantId} and id in (${sql.join(starts)})
      union
      select ${next}, reach.depth + 1
      from reach
      join graph_relations r on ${join}${entityTypes}
      where reach.depth < ${req.depth} and r.tenant_id = ${tenantId}
        and r.valid_from <= ${req.asOf} and (r.valid_to is null or r.valid_to > ${req.asOf})${relationTypes}${innerLimit}
    )
    select id, depth from reach limit ${rows}`.execute(store.db);
  const depthOf = new Map<string, number>();
  for (const r of result.rows) if (!depthOf.has(r.id)) depthOf.set(r.id, Number(r.depth));
  let truncated = depthOf.size > req.maxNodes || result.rows.length >= rows;
  const ids = [...depthOf.keys()].slice(0, req.maxNodes);
  const entities = await store.load(tenantId, ids, req.asOf);
  const nodes = ids.flatMap((id) => {
    const entity = entities.get(id);
    return entity && existed(entity, req.asOf) && isReadable(readable, entity.namespace) ? [{ entity, depth: depthOf.get(id) as number }] : [];
  });
  const kept = nodes.map((n) => n.entity.id);
  let edges: GraphResultRow['edges'] = [];
  if (kept.length > 0 && req.maxEdges > 0) {
    let q = store.db
      .selectFrom('graph_relations')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('source_id', 'in', kept)
      .where('target_id', 'in', kept)
      .where(validAt(req.asOf));
    if (req.relationTypes) q = q.where('type', 'in', req.relationTypes);
    const found = await q
      .orderBy('id')
      .limit(req.maxEdges + 1)
      .execute();
    if (found.length > req.maxEdges) truncated = true;
    edges = found.slice(0, req.maxEdges).map(decodeRelation);
  }
  return { nodes, edges, truncated };
}

interface Step {
  id: string;
  from: string;
  to: string;
  weight: number;
}

/** One hop from each frontier entity, along relations whose `along` end is in the frontier. */
/** The entity `e` lies in a namespace under one of the prefixes. */
function namespaceIn(prefixes: string[]) {
  if (prefixes.length === 0) return sql`1 = 0`;
  return sql`(${sql.join(
    prefixes.map((p) => sql`(e.namespace = ${p} or e.namespace like ${`${p.replace(/[\\%_]/g, (ch) => `\\${ch}`)}/%`} escape '\\')`),
    sql` or `,
  )})`;
}

async function hop(
  store: GraphStore,
  tenantId: string,
  frontier: string[],
  along: ('source' | 'target')[],
  req: PathRequest,
  readable: Readable,
): Promise<Step[]> {
  const out: Step[] = [];
  for (let i = 0; i < frontier.length; i += 400) {
    const part = frontier.slice(i, i + 400);
    for (const end of along) {
      let q = store.db
        .selectFrom('graph_relations')
        .select(['id', 'source_id', 'target_id', 'weight'])
        .where('tenant_id', '=', tenantId)
        .where(end === 'source' ? 'source_id' : 'target_id', 'in', part)
        .where(validAt(req.asOf));
      if (req.relationTypes) q = q.where('type', 'in', req.relationTypes);
      let rows = await q.execute();
      if (readable !== null && rows.length > 0) {
        // An agent caller's path goes only through entities it may read.
        const others = [...new Set(rows.map((r) => (end === 'source' ? r.target_id : r.source_id)))];
        const ok = new Set<string>();
        for (let j = 0; j < others.length; j += 400) {
          const found = await sql<{
            id: string;
          }>`select e.id from graph_entities e where e.id in (${sql.join(others.slice(j, j + 400))}) and ${namespaceIn(readable)}`.execute(store.db);
          for (const f of found.rows) ok.add(f.id);
        }
        rows = rows.filter((r) => ok.has(end === 'source' ? r.target_id : r.source_id));
      }
      for (const r of rows) {
        out.push(
          end === 'source'
            ? { id: r.id, from: r.source_id, to: r.target_id, weight: Number(r.weight) }
            : { id: r.id, from: r.target_id, to: r.source_id, weight: Number(r.weight) },
        );
      }
    }
  }
  return out;
}

function ends(direction: Direction, forward: boolean): ('source' | 'target')[] {
  if (direction === 'BOTH') return ['source', 'target'];
  return (direction === 'OUT') === forward ? ['source'] : ['target'];
}

export async function shortestPath(store: GraphStore, tenantId: string, req: PathRequest, readable: Readable): Promise<GraphPathRow | null> {
  const [from, to] = (await store.resolve(store.db, tenantId, [
    { ref: req.from, field: 'input.from' },
    { ref: req.to, field: 'input.to' },
  ])) as [string, string];
  const found =
    from === to
      ? { nodes: [from], edges: [] as string[] }
      : req.weighted
        ? await weighted(store, tenantId, from, to, req, readable)
        : await unweighted(store, tenantId, from, to, req, readable);
  if (!found) return null;
  const entities = await store.load(tenantId, found.nodes, req.asOf);
  const relations = await store.relationsById(tenantId, found.edges);
  const nodes = found.nodes.map((id) => entities.get(id) as EntityRow);
  // A path through an entity the caller may not read (or that did not exist then) is no path for it.
  if (nodes.some((e) => !e || !existed(e, req.asOf) || !isReadable(readable, e.namespace))) return null;
  const edges = found.edges.map((id) => relations.get(id) as NonNullable<ReturnType<typeof relations.get>>);
  return { nodes, edges, length: edges.length, cost: edges.reduce((sum, e) => sum + (req.weighted ? e.weight : 1), 0) };
}

interface Found {
  nodes: string[];
  edges: string[];
}

/** Too many entities reached: the search stops with GRAPH_LIMIT_EXCEEDED rather than run on. */
function budget(visited: number): void {
  if (visited > MAX_PATH_EDGES) {
    throw graphLimit(`The path search reached more than ${MAX_PATH_EDGES} entities or relations: lower maxDepth or name relationTypes`, {
      max: MAX_PATH_EDGES,
    });
  }
}

interface Side {
  dist: Map<string, number>;
  parent: Map<string, { edge: string; prev: string }>;
  frontier: string[];
  depth: number;
  forward: boolean;
}

async function unweighted(store: GraphStore, tenantId: string, from: string, to: string, req: PathRequest, readable: Readable): Promise<Found | null> {
  const f: Side = { dist: new Map([[from, 0]]), parent: new Map(), frontier: [from], depth: 0, forward: true };
  const b: Side = { dist: new Map([[to, 0]]), parent: new Map(), frontier: [to], depth: 0, forward: false };
  while (f.depth + b.depth < req.maxDepth && f.frontier.length > 0 && b.frontier.length > 0) {
    const side = f.frontier.length <= b.frontier.length ? f : b;
    const other = side === f ? b : f;
    const steps = await hop(store, tenantId, side.frontier, ends(req.direction, side.forward), req, readable);
    const next: string[] = [];
    for (const s of steps) {
      if (side.dist.has(s.to)) continue;
      side.dist.set(s.to, side.depth + 1);
      side.parent.set(s.to, { edge: s.id, prev: s.from });
      next.push(s.to);
    }
    side.depth += 1;
    side.frontier = next;
    budget(f.dist.size + b.dist.size);
    let meet: string | null = null;
    for (const n of next) if (other.dist.has(n) && (meet === null || (other.dist.get(n) as number) < (other.dist.get(meet) as number))) meet = n;
    if (meet !== null) {
      const nodes = [meet];
      const edges: string[] = [];
      for (let cur = meet; cur !== from; ) {
        const p = f.parent.get(cur) as { edge: string; prev: string };
        edges.unshift(p.edge);
        nodes.unshift(p.prev);
        cur = p.prev;
      }
      for (let cur = meet; cur !== to; ) {
        const p = b.parent.get(cur) as { edge: string; prev: string };
        edges.push(p.edge);
        nodes.push(p.prev);
        cur = p.prev;
      }
      return { nodes, edges };
    }
  }
  return null;
}

async function weighted(store: GraphStore, tenantId: string, from: string, to: string, req: PathRequest, readable: Readable): Promise<Found | null> {
  const dist = new Map<string, number>([[from, 0]]);
  const rounds: Map<string, { cost: number; edge: string; prev: string }>[] = [];
  let frontier = [from];
  let loaded = 0;
  for (let h = 1; h <= req.maxDepth && frontier.length > 0; h++) {
    const steps = await hop(store, tenantId, frontier, ends(req.direction, true), req, readable);
    loaded += steps.length;
    budget(loaded);
    const round = new Map<string, { cost: number; edge: string; prev: string }>();
    const best = dist.get(to) ?? Number.POSITIVE_INFINITY;
    for (const s of steps) {
      const cost = (dist.get(s.from) as number) + s.weight;
      // Weights are never negative: nothing costing more than the best path to the target so far can lead to a better one.
      if (cost >= best && s.to !== to) continue;
      if (cost < (round.get(s.to)?.cost ?? dist.get(s.to) ?? Number.POSITIVE_INFINITY)) round.set(s.to, { cost, edge: s.id, prev: s.from });
    }
    for (const [v, u] of round) dist.set(v, u.cost);
    rounds.push(round);
    frontier = [...round.keys()].filter((v) => v !== to);
  }
  if (!dist.has(to)) return null;
  const nodes = [to];
  const edges: string[] = [];
  let h = rounds.length - 1;
  for (let cur = to; cur !== from; ) {
    while (h >= 0 && !rounds[h]?.has(cur)) h--;
    const u = rounds[h]?.get(cur) as { edge: string; prev: string };
    edges.unshift(u.edge);
    nodes.unshift(u.prev);
    cur = u.prev;
    h--;
  }
  return { nodes, edges };
}
