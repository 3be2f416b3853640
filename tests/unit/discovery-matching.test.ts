// Capability matching ranks as the README documents it, on fixed data; cards are signed and
// verified as A2A says (detached JWS over the canonical card); peers back off by doubling.
import { generateKeyPairSync } from 'node:crypto';
import type { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { buildCard, canonicalJson, createCardSigner, verifyCard } from '../../subgraphs/discovery/cards.ts';
import { backoffSeconds, DEFAULT_SETTINGS, normaliseNeed, type AgentProfile } from '../../subgraphs/discovery/domain.ts';
import { buildIndex, localEntry, rank, type LiveState } from '../../subgraphs/discovery/matching.ts';

const NOW = Date.parse('2026-03-01T12:00:00.000Z');
const ago = (s: number) => new Date(NOW - s * 1000).toISOString();

function agent(id: string, name: string, description: string, tags: string[], over: Partial<AgentProfile> = {}): AgentProfile {
  return {
    tenantId: 't',
    agentId: id,
    name,
    description,
    agentVersion: '1.0.0',
    endpointUrl: `https://agents.example.com/${id}`,
    provider: { organization: 'Example', url: null },
    capabilities: { streaming: true, pushNotifications: false },
    skills: [{ id: tags[0] ?? id, name, description: null, tags, examples: [], inputModes: [], outputModes: [] }],
    labels: [{ key: 'region', value: 'eu' }],
    defaultInputModes: ['text/plain'],
    defaultOutputModes: ['text/plain'],
    status: 'ACTIVE',
    heartbeatIntervalSeconds: 30,
    lastHeartbeatAt: ago(10),
    syncedAt: ago(0),
    ...over,
  };
}

const agents = [
  agent('a1', 'Security Reviewer', 'Reviews pull requests for security vulnerabilities', ['review', 'security']),
  agent('a2', 'Style Reviewer', 'Reviews code style and formatting', ['review', 'style']),
  agent('a3', 'Translator', 'Translates documents between languages', ['translate'], { labels: [{ key: 'region', value: 'us' }] }),
  agent('a4', 'Stale Security Reviewer', 'Reviews pull requests for security issues', ['review', 'security'], { lastHeartbeatAt: ago(120) }),
  agent('a5', 'Paused Reviewer', 'Reviews everything', ['review', 'security'], { status: 'PAUSED' }),
];
const index = buildIndex(agents.map(localEntry));
const idle: LiveState = { lastHeartbeatAt: null, activeTasks: 0, completed: 0, failed: 0 };
const live =
  (overrides: Record<string, Partial<LiveState>> = {}) =>
  (id: string) => {
    const a = agents.find((x) => x.agentId === id);
    return { ...idle, lastHeartbeatAt: a?.lastHeartbeatAt ?? null, ...overrides[id] };
  };

describe('matchAgents ranking', () => {
  it('ranks by skill coverage first, then health; paused agents never match', () => {
    const ranked = rank(index, normaliseNeed({ skills: ['review', 'security'] }), live(), NOW);
    expect(ranked.map((m) => m.agentId)).toEqual(['a1', 'a4', 'a2']);
    expect(ranked[0]).toMatchObject({
      parts: { skills: 1, text: 0, health: 1, load: 1, success: 0.5 },
      matchedSkills: ['review', 'security'],
      health: 'HEALTHY',
    });
    expect(ranked[1]).toMatchObject({ parts: { skills: 1, health: 0.5 }, health: 'STALE', score: 0.625 });
    expect(ranked[2]).toMatchObject({ parts: { skills: 0.5, health: 1 }, matchedSkills: ['review'] });
    // Default weights 4 : 2.5 : 1.5 : 1 : 1 normalised: 0.4 + 0 + 0.15 + 0.1 + 0.05 = 0.7.
    expect(ranked[0]?.score).toBe(0.7);
    expect(ranked[0]?.explanation).toBe('0.4×skills 1 + 0.25×text 0 + 0.15×health 1 + 0.1×load 1 + 0.1×success 0.5 = 0.7');
  });

  it('requireAllSkills, labels, region and minHealth leave agents out', () => {
    expect(rank(index, normaliseNeed({ skills: ['review', 'security'], requireAllSkills: true }), live(), NOW).map((m) => m.agentId)).toEqual(['a1', 'a4']);
    expect(rank(index, normaliseNeed({ skills: ['review', 'security'], minHealth: 'HEALTHY' }), live(), NOW).map((m) => m.agentId)).toEqual(['a1', 'a2']);
    expect(rank(index, normaliseNeed({ skills: ['translate'], region: 'eu' }), live(), NOW)).toEqual([]);
    expect(rank(index, normaliseNeed({ skills: ['translate'], labels: [{ key: 'region' }] }), live(), NOW).map((m) => m.agentId)).toEqual(['a3']);
  });

  it('ranks by text relevance when only text is given, leaving out agents sharing no word', () => {
    const ranked = rank(index, normaliseNeed({ text: 'security vulnerabilities in pull requests' }), live(), NOW);
    expect(ranked.map((m) => m.agentId)).toEqual(['a1', 'a4']);
    expect(ranked[0]!.parts.text).toBeGreaterThan(ranked[1]!.parts.text);
    expect(ranked[0]!.parts.text).toBeLessThanOrEqual(1);
    expect(ranked[0]!.parts.skills).toBe(1);
  });

  it('prefers the less loaded and more successful agent when the rest ties', () => {
    const need = normaliseNeed({ skills: ['review', 'security'], requireAllSkills: true, weights: { health: 0 } });
    const byLoad = rank(index, need, live({ a1: { activeTasks: 3 } }), NOW);
    expect(byLoad.map((m) => m.agentId)).toEqual(['a4', 'a1']);
    expect(byLoad[1]).toMatchObject({ activeTasks: 3, parts: { load: 0.25 } });
    const bySuccess = rank(index, need, live({ a1: { completed: 8, failed: 0 }, a4: { completed: 0, failed: 8 } }), NOW);
    expect(bySuccess.map((m) => [m.agentId, m.parts.success])).toEqual([
      ['a1', 0.9],
      ['a4', 0.1],
    ]);
    expect(rank(index, normaliseNeed({ skills: ['review'], maxActiveTasks: 2 }), live({ a1: { activeTasks: 3 } }), NOW).map((m) => m.agentId)).not.toContain(
      'a1',
    );
  });

  it('normalises weights and refuses needs without skills or text', () => {
    expect(normaliseNeed({ skills: ['x'], weights: { skills: 1, text: 1, health: 1, load: 1, success: 0 } }).weights).toEqual({
      skills: 0.25,
      text: 0.25,
      health: 0.25,
      load: 0.25,
      success: 0,
    });
    expect(() => normaliseNeed({ skills: [] })).toThrow(/skills, text or both/);
    expect(() => normaliseNeed({ skills: ['x'], weights: { skills: 0, text: 0, health: 0, load: 0, success: 0 } })).toThrow(/must not all be 0/);
    try {
      normaliseNeed({ skills: ['x'], limit: 101 });
      expect.unreachable();
    } catch (err) {
      expect((err as GraphQLError).extensions.code).toBe('BAD_USER_INPUT');
    }
  });
});

describe('A2A cards', () => {
  const profile = agents[0] as AgentProfile;

  it('are built with the v1.0 fields', () => {
    const card = buildCard(profile, {
      ...DEFAULT_SETTINGS,
      interfaces: [{ url: 'https://grpc.example.com/a1', protocolBinding: 'GRPC', protocolVersion: '1.0' }],
    });
    expect(card).toEqual({
      name: 'Security Reviewer',
      description: 'Reviews pull requests for security vulnerabilities',
      version: '1.0.0',
      supportedInterfaces: [
        { url: 'https://agents.example.com/a1', protocolBinding: 'JSONRPC', protocolVersion: '1.0' },
        { url: 'https://grpc.example.com/a1', protocolBinding: 'GRPC', protocolVersion: '1.0' },
      ],
      capabilities: { streaming: true, pushNotifications: false, extendedAgentCard: false },
      defaultInputModes: ['text/plain'],
      defaultOutputModes: ['text/plain'],
      skills: [{ id: 'review', name: 'Security Reviewer', description: '', tags: ['review', 'security'] }],
      provider: { organization: 'Example' },
    });
  });

  it('are signed with a detached JWS that verifies with the public key only, and not once changed', async () => {
    for (const curve of ['P-256', 'Ed25519'] as const) {
      const pair = curve === 'P-256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
      const signer = await createCardSigner(JSON.stringify({ ...pair.privateKey.export({ format: 'jwk' }), kid: `k-${curve}` }));
      expect(signer.publicJwk).not.toHaveProperty('d');
      const signed = await signer.sign(buildCard(profile, DEFAULT_SETTINGS));
      const jwks = { keys: [signer.publicJwk] };
      expect(await verifyCard(signed, jwks)).toEqual({ signed: true, verified: true, keyId: `k-${curve}`, error: null });
      // Key order does not matter: the signature is over the canonical JSON.
      const reordered = Object.fromEntries(Object.entries(signed).reverse());
      expect((await verifyCard(reordered, jwks)).verified).toBe(true);
      expect((await verifyCard({ ...signed, version: '9.9.9' }, jwks)).verified).toBe(false);
      expect(await verifyCard(buildCard(profile, DEFAULT_SETTINGS), jwks)).toMatchObject({ signed: false, verified: false });
    }
  });

  it('canonical JSON sorts keys at every level', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[2,{"y":2,"z":1}]},"b":1}');
  });
});

describe('peer backoff', () => {
  it('doubles the interval per failure, capped', () => {
    expect([0, 1, 2, 3].map((f) => backoffSeconds(60, f))).toEqual([60, 120, 240, 480]);
    expect(backoffSeconds(60, 30)).toBe(3600);
  });
});
