// Thin GraphQL layer: check scopes, validate arguments, call the store; cards, DUADP documents and
// WebFinger answers are shaped here from what the store returns.
import { badInput, notFound } from '../../runtime/errors.ts';
import type { DomainEvent } from '../../runtime/events.ts';
import { eventStreamsOf } from '../../runtime/event-streams.ts';
import { idempotentRequest } from '../../runtime/idempotency.ts';
import { requireScopes } from '../../runtime/identity.ts';
import { parseId } from '../../runtime/ids.ts';
import { pageRequest } from '../../runtime/pagination.ts';
import { afterSequenceArg, eventIdentity, eventScalarResolvers, scalarResolvers } from '../../runtime/scalars.ts';
import { intInRange } from '../../runtime/validate.ts';
import type { JWK } from 'jose';
import { agentNotFound } from './agent-source.ts';
import { A2A_PROTOCOL_VERSION, buildCard, verifyCard, type AgentCard } from './cards.ts';
import type { DiscoveryContext } from './context.ts';
import {
  applySettings,
  documentOf,
  healthOf,
  normaliseNeed,
  normalisePeer,
  normaliseService,
  SERVICE_EVENTS,
  terms,
  type AgentProfile,
  type ListingSettings,
  type ServiceStatusPayload,
} from './domain.ts';
import type { Resolvers } from './generated/resolvers-types.ts';
import { rank } from './matching.ts';
import type { ListingRow } from './store.ts';

/** The version of the DUADP draft this node implements (see the README's Discovery section). */
export const DUADP_VERSION = '0.1.0';
const CARD_REL = 'https://a2a-protocol.org/rel/agent-card';

// Defence in depth: the gateway already removed what the caller's scopes do not allow.
function reading(ctx: DiscoveryContext): DiscoveryContext {
  requireScopes(ctx.identity, [['discovery:read']]);
  return ctx;
}

function writing(ctx: DiscoveryContext): DiscoveryContext {
  requireScopes(ctx.identity, [['discovery:write']]);
  return ctx;
}

/** Whether the caller may see its tenant's private agents: authenticated, with discovery:read. */
function seesTenant(ctx: DiscoveryContext): boolean {
  return ctx.identity.kind !== 'anonymous' && ctx.identity.tenantId !== null && ctx.identity.scopes.includes('discovery:read');
}

const cardUrl = (ctx: DiscoveryContext, agentId: string) => `${ctx.publicUrl}/v1/agents/${encodeURIComponent(agentId)}/card`;

/** The card as served: built from the profile and settings, signed when the node has a key. */
async function cardOf(ctx: DiscoveryContext, profile: AgentProfile, settings: ListingSettings): Promise<AgentCard> {
  const card = buildCard(profile, settings);
  return ctx.signer ? ctx.signer.sign(card) : card;
}

/** A listing the caller may read: its tenant's (with discovery:read), else a public one of any tenant. */
async function visibleListing(ctx: DiscoveryContext, agentId: string): Promise<ListingRow | null> {
  if (seesTenant(ctx)) {
    const own = await ctx.store.listing(ctx.tenantId, agentId);
    if (own?.profile && own.profile.status !== 'RETIRED') return own;
  }
  const found = await ctx.store.publicListing(agentId);
  return found?.profile && found.profile.status !== 'RETIRED' ? found : null;
}

function offsetPage(limit: number | null | undefined, offset: number | null | undefined) {
  return { limit: intInRange(limit ?? 50, 'limit', 1, 100), offset: intInRange(offset ?? 0, 'offset', 0, 1_000_000) };
}

function host(ctx: DiscoveryContext): string {
  return new URL(ctx.publicUrl).host;
}

export const resolvers: Resolvers = {
  ...scalarResolvers,
  ...eventScalarResolvers,
  Query: {
    agentCard: async (_parent, { id }, ctx) => {
      const listing = await visibleListing(ctx, parseId(id, 'id'));
      return listing?.profile ? cardOf(ctx, listing.profile, listing) : null;
    },
    duadpNode: (_parent, _args, ctx) => ({
      protocol: 'DUADP',
      version: DUADP_VERSION,
      node: host(ctx),
      name: ctx.nodeName,
      base_url: ctx.publicUrl,
      endpoints: {
        agents: `${ctx.publicUrl}/api/v1/agents`,
        skills: `${ctx.publicUrl}/api/v1/skills`,
        webfinger: `${ctx.publicUrl}/.well-known/webfinger`,
        agent_card: `${ctx.publicUrl}/v1/agents/{id}/card`,
      },
      federation: { mode: 'pull', peers: true },
      identity: { did: `did:web:${host(ctx).replace(':', '%3A')}`, ...(ctx.signer ? { jwks: { keys: [ctx.signer.publicJwk] } } : {}) },
      protocols: { a2a: { version: A2A_PROTOCOL_VERSION, card_signatures: ctx.signer !== null } },
    }),
    duadpAgents: async (_parent, { q, tag, limit, offset }, ctx) => {
      const page = offsetPage(limit, offset);
      const wanted = q ? terms(q) : [];
      const t = tag?.trim().toLowerCase();
      const entries = (await ctx.store.catalog(seesTenant(ctx) ? ctx.tenantId : null)).filter(({ profile }) => {
        if (t && !profile.skills.some((s) => s.id.toLowerCase() === t || s.tags.some((x) => x.toLowerCase() === t))) return false;
        if (wanted.length === 0) return true;
        const words = new Set(terms(documentOf(profile)));
        return wanted.every((w) => words.has(w));
      });
      const now = Date.now();
      const agents = await Promise.all(
        entries.slice(page.offset, page.offset + page.limit).map(async ({ profile, settings }) => ({
          id: profile.agentId,
          name: profile.name,
          description: profile.description,
          version: profile.agentVersion,
          public: settings.public,
          provider: profile.provider?.organization ?? null,
          skills: profile.skills.map((s) => ({ id: s.id, name: s.name, description: s.description, tags: s.tags })),
          tags: [...new Set(profile.skills.flatMap((s) => s.tags))],
          status: profile.status,
          health: healthOf(profile.lastHeartbeatAt, profile.heartbeatIntervalSeconds, now),
          card_url: cardUrl(ctx, profile.agentId),
          card: await cardOf(ctx, profile, settings),
        })),
      );
      return { agents, total: entries.length, limit: page.limit, offset: page.offset };
    },
    duadpSkills: async (_parent, { q, limit, offset }, ctx) => {
      const page = offsetPage(limit, offset);
      const wanted = q ? terms(q) : [];
      const skills = new Map<string, { id: string; name: string; description: string | null; tags: Set<string>; agents: string[] }>();
      for (const { profile } of await ctx.store.catalog(seesTenant(ctx) ? ctx.tenantId : null)) {
        for (const s of profile.skills) {
          const entry = skills.get(s.id) ?? { id: s.id, name: s.name, description: s.description, tags: new Set<string>(), agents: [] };
          for (const tag of s.tags) entry.tags.add(tag);
          entry.agents.push(profile.agentId);
          skills.set(s.id, entry);
        }
      }
      const all = [...skills.values()]
        .filter((s) => {
          if (wanted.length === 0) return true;
          const words = new Set(terms([s.id, s.name, s.description ?? '', [...s.tags].join(' ')].join(' ')));
          return wanted.every((w) => words.has(w));
        })
        .sort((a, b) => (a.id < b.id ? -1 : 1));
      return {
        skills: all
          .slice(page.offset, page.offset + page.limit)
          .map((s) => ({ id: s.id, name: s.name, description: s.description, tags: [...s.tags], agent_count: s.agents.length, agents: s.agents })),
        total: all.length,
        limit: page.limit,
        offset: page.offset,
      };
    },
    webfinger: async (_parent, { resource, rel }, ctx) => {
      const r = resource.trim();
      let agentId: string | null = null;
      const acct = /^acct:([^@]+)@(.+)$/.exec(r);
      if (acct) {
        if (acct[2] !== host(ctx)) return null;
        agentId = decodeURIComponent(acct[1] as string);
      } else {
        const prefix = `${ctx.publicUrl}/v1/agents/`;
        if (r.startsWith(prefix) && r.endsWith('/card')) agentId = decodeURIComponent(r.slice(prefix.length, -'/card'.length));
      }
      if (agentId === null) {
        if (!/^(acct:|https?:)/.test(r)) throw badInput('resource must be an acct: URI or an agent card URL', { field: 'resource' });
        return null;
      }
      const listing = await visibleListing(ctx, agentId).catch(() => null);
      if (!listing?.profile) return null;
      const links = [
        { rel: CARD_REL, type: 'application/json', href: cardUrl(ctx, agentId) },
        { rel: 'describedby', type: 'application/json', href: cardUrl(ctx, agentId) },
        ...(listing.profile.endpointUrl ? [{ rel: 'self', type: 'application/json', href: listing.profile.endpointUrl }] : []),
      ].filter((l) => !rel || rel.length === 0 || rel.includes(l.rel));
      return {
        subject: r,
        aliases: [`acct:${agentId}@${host(ctx)}`, cardUrl(ctx, agentId)].filter((a) => a !== r),
        properties: { 'https://a2a-protocol.org/name': listing.profile.name },
        links,
      };
    },
    verifyAgentCard: async (_parent, { card, jwks }, ctx) => {
      reading(ctx);
      const keys = jwks == null ? (ctx.signer ? { keys: [ctx.signer.publicJwk] } : null) : (jwks as { keys?: JWK[] }).keys ? (jwks as { keys: JWK[] }) : null;
      if (jwks != null && !keys) throw badInput('jwks must be a JWKS: { "keys": [ ...public JWKs ] }', { field: 'jwks' });
      return verifyCard(card, keys);
    },
    matchAgents: async (_parent, { need }, ctx) => {
      const n = normaliseNeed(need);
      const { index, live } = await reading(ctx).store.matchState(ctx.tenantId);
      return rank(index, n, (id) => live.get(id), ctx.store.now());
    },
    service: (_parent, { id }, ctx) => reading(ctx).store.service(ctx.tenantId, parseId(id, 'id')),
    services: (_parent, { filter, first, after }, ctx) => reading(ctx).store.services(ctx.tenantId, filter ?? {}, pageRequest({ first, after })),
    peers: (_parent, _args, ctx) => reading(ctx).store.peers(ctx.tenantId),
    remoteAgents: (_parent, { peerId, first }, ctx) =>
      reading(ctx).store.remoteAgents(ctx.tenantId, peerId ? parseId(peerId, 'peerId') : null, intInRange(first ?? 50, 'first', 1, 500)),
  },
  Mutation: {
    setAgentDiscovery: async (_parent, { agentId, input, expectedVersion }, ctx) => {
      const id = parseId(agentId, 'agentId');
      writing(ctx);
      // Validated before the agents subgraph is asked; applied again inside the transaction.
      applySettings({ public: false, interfaces: [], securitySchemes: {}, securityRequirements: [], documentationUrl: null, iconUrl: null }, input);
      const profile = await ctx.agents.fetch(ctx.tenantId, id, ctx.requestId);
      if (!profile) throw agentNotFound(id);
      await ctx.store.upsertProfile(profile);
      return ctx.store.setListing(ctx.tenantId, id, (current) => applySettings(current, input), expectedVersion);
    },
    registerService: (_parent, args, ctx) =>
      writing(ctx).store.registerService(ctx.tenantId, normaliseService(args.input), idempotentRequest(ctx, 'registerService', args)),
    heartbeatService: (_parent, { id }, ctx) => writing(ctx).store.heartbeatService(ctx.tenantId, parseId(id, 'id')),
    deregisterService: (_parent, { id }, ctx) => writing(ctx).store.deregisterService(ctx.tenantId, parseId(id, 'id')),
    registerPeer: (_parent, args, ctx) =>
      writing(ctx).store.registerPeer(ctx.tenantId, normalisePeer(args.input), idempotentRequest(ctx, 'registerPeer', args)),
    syncPeer: async (_parent, { id }, ctx) => {
      const peer = await writing(ctx).store.peer(ctx.tenantId, parseId(id, 'id'));
      if (!peer) throw notFound('Peer', id);
      return ctx.pull(peer);
    },
    removePeer: (_parent, { id }, ctx) => writing(ctx).store.removePeer(ctx.tenantId, parseId(id, 'id')),
  },
  Subscription: {
    serviceStatusChanged: {
      subscribe: (_parent, args, ctx) => {
        reading(ctx);
        const serviceId = args.serviceId == null ? null : parseId(args.serviceId, 'serviceId');
        return eventStreamsOf(ctx).stream({
          types: SERVICE_EVENTS,
          tenantId: ctx.tenantId,
          afterSequence: afterSequenceArg(args.afterSequence),
          filter: (event) => serviceId === null || (event.payload as ServiceStatusPayload).serviceId === serviceId,
        });
      },
      resolve: (event: DomainEvent) => {
        const p = event.payload as ServiceStatusPayload;
        return { serviceId: p.serviceId, from: p.from, to: p.to, reason: p.reason, occurredAt: event.occurredAt, ...eventIdentity(event) };
      },
    },
  },
  ServiceStatusEvent: {
    service: (event, _args, ctx) => ctx.store.service(ctx.tenantId, event.serviceId),
  },
  AgentDiscovery: {
    card: async (listing, _args, ctx) =>
      listing.profile ? cardOf(ctx, listing.profile, listing) : { name: listing.agentId, description: '', supportedInterfaces: [], skills: [] },
    profileSyncedAt: (listing) => listing.profile?.syncedAt ?? null,
  },
  Agent: {
    discovery: (agent, _args, ctx) => reading(ctx).store.listing(ctx.tenantId, agent.id),
  },
};
