/**
 * Path matching for the REST routes. A literal segment beats a placeholder at the same position
 * (so `/v1/tasks/claim` is not `/v1/tasks/{id}`), as OpenAPI prescribes; the methods of the
 * best-matching template decide between a route and 405.
 */

export interface Routable {
  method: string;
  path: string;
}

export type MatchResult<T> = { kind: 'found'; entry: T; params: Record<string, string> } | { kind: 'method-not-allowed'; allowed: string[] } | { kind: 'none' };

interface Template<T> {
  segments: string[];
  /** 1 for a literal segment, 0 for a placeholder: compared lexicographically. */
  specificity: number[];
  byMethod: Map<string, T>;
}

export class RouteTable<T extends Routable> {
  private readonly templates: Template<T>[] = [];
  /** First path segments of all routes (e.g. `v1`): requests under them get REST 404s. */
  readonly prefixes = new Set<string>();

  constructor(entries: readonly T[]) {
    const byPath = new Map<string, Template<T>>();
    for (const entry of entries) {
      let template = byPath.get(entry.path);
      if (!template) {
        const segments = entry.path.split('/').slice(1);
        template = { segments, specificity: segments.map((s) => (s.startsWith('{') ? 0 : 1)), byMethod: new Map() };
        byPath.set(entry.path, template);
        this.templates.push(template);
        if (segments[0] !== undefined) this.prefixes.add(segments[0]);
      }
      template.byMethod.set(entry.method, entry);
    }
  }

  get size(): number {
    return this.templates.reduce((n, t) => n + t.byMethod.size, 0);
  }

  match(method: string, pathname: string): MatchResult<T> {
    const parts = pathname.split('/').slice(1);
    let best: { template: Template<T>; params: Record<string, string> } | undefined;
    for (const template of this.templates) {
      if (template.segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      const fits = template.segments.every((segment, i) => {
        const part = parts[i] ?? '';
        if (segment.startsWith('{')) {
          params[segment.slice(1, -1)] = part;
          return part !== '';
        }
        return segment === part;
      });
      if (fits && (!best || moreSpecific(template.specificity, best.template.specificity))) best = { template, params };
    }
    if (!best) return { kind: 'none' };
    const entry = best.template.byMethod.get(method);
    if (entry) return { kind: 'found', entry, params: best.params };
    return { kind: 'method-not-allowed', allowed: [...best.template.byMethod.keys()].sort() };
  }
}

function moreSpecific(a: number[], b: number[]): boolean {
  for (let i = 0; i < a.length; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return false;
}
