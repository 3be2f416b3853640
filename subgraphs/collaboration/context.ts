import type { RequestContext } from '../../runtime/context.ts';
import type { PresenceTracker } from './presence.ts';
import type { CollaborationStore } from './store.ts';
import type { SubjectDirectory } from './subjects.ts';

/** Per request: the store, this replica's presence tracker and typing throttle; identity and tenant come from the runtime. */
export interface CollaborationContext extends RequestContext {
  store: CollaborationStore;
  presence: PresenceTracker;
  typing: TypingThrottle;
  /** Whether a task or workflow run exists (asked of orchestration). */
  subjects: SubjectDirectory;
}

/** At most one typing event per participant and channel per interval, in this replica. */
export class TypingThrottle {
  private readonly last = new Map<string, number>();
  constructor(private readonly intervalMs: number) {}

  /** True when this one should be sent. */
  allow(key: string, now: number): boolean {
    const previous = this.last.get(key);
    if (previous !== undefined && now - previous < this.intervalMs) return false;
    this.last.delete(key);
    this.last.set(key, now);
    if (this.last.size > 10_000) {
      const oldest = this.last.keys().next().value;
      if (oldest !== undefined) this.last.delete(oldest);
    }
    return true;
  }
}

export function createCollaborationContext(
  base: RequestContext,
  store: CollaborationStore,
  presence: PresenceTracker,
  typing: TypingThrottle,
  subjects: SubjectDirectory,
): CollaborationContext {
  return { ...base, store, presence, typing, subjects };
}
