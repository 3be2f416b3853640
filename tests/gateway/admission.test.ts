// The gate and the limit of gateway/admission on their own: no clock but the one a test moves,
// no server. The gateway's use of them over HTTP, SSE and WebSocket is in tests/e2e/overload.test.ts.
import type { IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadAdmissionConfig } from '../../gateway/admission/config.ts';
import { AdmissionGate, isShed, type Permit, type Shed } from '../../gateway/admission/gate.ts';
import { laneOf } from '../../gateway/admission/lanes.ts';
import { fixedLimit, gradientLimit } from '../../gateway/admission/limit.ts';
import { ConfigError } from '../../runtime/config.ts';

afterEach(() => {
  vi.useRealTimers();
});

function permit(outcome: Permit | Shed | Promise<Permit | Shed>): Permit {
  if (outcome instanceof Promise || isShed(outcome))
    throw new Error(`expected a permit at once, got ${outcome instanceof Promise ? 'a queue place' : outcome.shed}`);
  return outcome;
}

describe('AdmissionGate', () => {
  it('admits up to the limit at once, queues the next ones and hands them the freed slots in order', async () => {
    const gate = new AdmissionGate({ limit: fixedLimit(2), maxQueued: 10, queueTimeoutMs: 10_000, reservedShare: 0 });
    const a = permit(gate.enter('standard'));
    permit(gate.enter('standard'));
    const third = gate.enter('standard');
    const fourth = gate.enter('standard');
    expect(third).toBeInstanceOf(Promise);
    expect(gate.stats()).toMatchObject({ inFlight: 2, queued: 2 });
    expect(gate.overloaded()).toBe(true);
    a.release();
    const admitted = await third;
    expect(isShed(admitted)).toBe(false);
    expect(gate.stats()).toMatchObject({ inFlight: 2, queued: 1, admitted: { standard: 3, reserved: 0 } });
    (admitted as Permit).release();
    expect(isShed(await fourth)).toBe(false);
  });

  it('refuses at once when the queue is full, and after the deadline when no slot frees', async () => {
    vi.useFakeTimers();
    const gate = new AdmissionGate({ limit: fixedLimit(1), maxQueued: 1, queueTimeoutMs: 50, reservedShare: 0 });
    permit(gate.enter('standard'));
    const queued = gate.enter('standard');
    expect(gate.enter('standard')).toEqual({ shed: 'queue_full' });
    vi.advanceTimersByTime(50);
    expect(await queued).toEqual({ shed: 'queue_timeout' });
    expect(gate.stats()).toMatchObject({ queued: 0, shed: { queue_full: 1, queue_timeout: 1 } });
  });

  it('keeps the reserved share for operators and agents, and serves their waiters first', async () => {
    const gate = new AdmissionGate({ limit: fixedLimit(10), maxQueued: 10, queueTimeoutMs: 10_000, reservedShare: 0.2 });
    const standard = Array.from({ length: 8 }, () => permit(gate.enter('standard')));
    // The standard lane is full at 8 of 10; the reserved lane still gets in at once.
    const waiting = gate.enter('standard');
    expect(waiting).toBeInstanceOf(Promise);
    const reserved = permit(gate.enter('reserved'));
    permit(gate.enter('reserved'));
    const reservedWaiting = gate.enter('reserved');
    expect(reservedWaiting).toBeInstanceOf(Promise);
    // One slot frees: the reserved waiter gets it although the standard one came first.
    reserved.release();
    expect(isShed(await reservedWaiting)).toBe(false);
    expect(gate.stats()).toMatchObject({ inFlight: 10, queued: 1 });
    // The standard lane may fill the limit only up to 8 in flight, whoever holds the rest: with two
    // reserved requests in flight, it takes three freed standard slots before it gets one.
    standard[0]!.release();
    standard[1]!.release();
    expect(gate.stats()).toMatchObject({ inFlight: 8, queued: 1 });
    standard[2]!.release();
    expect(isShed(await waiting)).toBe(false);
  });

  it('refuses queued and new requests once closed', async () => {
    const gate = new AdmissionGate({ limit: fixedLimit(1), maxQueued: 5, queueTimeoutMs: 10_000, reservedShare: 0 });
    permit(gate.enter('standard'));
    const queued = gate.enter('standard');
    gate.close();
    expect(await queued).toEqual({ shed: 'closing' });
    expect(gate.enter('reserved')).toEqual({ shed: 'closing' });
  });

  it('counts a permit released twice once', () => {
    const gate = new AdmissionGate({ limit: fixedLimit(2), maxQueued: 0, queueTimeoutMs: 10, reservedShare: 0 });
    const a = permit(gate.enter('standard'));
    a.release();
    a.release();
    expect(gate.stats().inFlight).toBe(0);
  });
});

describe('gradientLimit', () => {
  it('grows while latency stays at its long-run level and the limit is used', () => {
    const limit = gradientLimit({ initial: 20, min: 5, max: 200 });
    for (let i = 0; i < 200; i++) limit.sample(10, limit.current);
    expect(limit.current).toBeGreaterThan(20);
    expect(limit.current).toBeLessThanOrEqual(200);
  });

  it('shrinks when latency climbs well above its long-run level, and never below the minimum', () => {
    const limit = gradientLimit({ initial: 100, min: 8, max: 200 });
    for (let i = 0; i < 300; i++) limit.sample(10, limit.current);
    const before = limit.current;
    for (let i = 0; i < 50; i++) limit.sample(200, limit.current);
    expect(limit.current).toBeLessThan(before);
    for (let i = 0; i < 2000; i++) limit.sample(5_000, limit.current);
    expect(limit.current).toBeGreaterThanOrEqual(8);
  });

  it('does not grow from requests that did not fill the limit', () => {
    const limit = gradientLimit({ initial: 40, min: 5, max: 400 });
    for (let i = 0; i < 500; i++) limit.sample(10, 1);
    expect(limit.current).toBe(40);
  });
});

describe('laneOf', () => {
  const request = (authorization?: string) => ({ headers: authorization ? { authorization } : {} }) as IncomingMessage;
  const token = (claims: Record<string, unknown>) => `Bearer e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;

  it('puts agents and operators in the reserved lane, everyone else in the standard one', () => {
    expect(laneOf(request(token({ agent_id: '0b6f5a4e-8d3c-4e1a-9f2b-7c6d5e4f3a2b' })), 'agent_id')).toBe('reserved');
    expect(laneOf(request(token({ scope: 'agents:read admin' })), 'agent_id')).toBe('reserved');
    expect(laneOf(request(token({ scp: ['admin'] })), 'agent_id')).toBe('reserved');
    expect(laneOf(request(token({ scope: 'agents:read' })), 'agent_id')).toBe('standard');
    expect(laneOf(request(), 'agent_id')).toBe('standard');
    expect(laneOf(request('ApiKey ak_123'), 'agent_id')).toBe('standard');
    expect(laneOf(request('Bearer not-a-jwt'), 'agent_id')).toBe('standard');
    expect(laneOf(request('Bearer a.%%%.c'), 'agent_id')).toBe('standard');
  });
});

describe('admission configuration', () => {
  it('refuses a minimum above the maximum and a reserved share past 90 %', () => {
    expect(() => loadAdmissionConfig({ ADMISSION_MIN_LIMIT: '100', ADMISSION_MAX_LIMIT: '10', ADMISSION_RESERVED_PERCENT: '95' })).toThrow(ConfigError);
    try {
      loadAdmissionConfig({ ADMISSION_MIN_LIMIT: '100', ADMISSION_MAX_LIMIT: '10', ADMISSION_RESERVED_PERCENT: '95' });
    } catch (err) {
      expect((err as ConfigError).problems).toEqual([
        'ADMISSION_MIN_LIMIT (100) is above ADMISSION_MAX_LIMIT (10)',
        'ADMISSION_RESERVED_PERCENT: expected 0-90, got 95',
      ]);
    }
    expect(() => loadAdmissionConfig({ ADMISSION: 'sometimes' })).toThrow(/ADMISSION: expected one of adaptive, fixed, off/);
  });
});
