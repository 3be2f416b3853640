import { describe, expect, it } from 'vitest';
import { ConfigError, commonSpec, env, loadConfig, subgraphSpec } from '../../runtime/config.ts';

describe('config from environment', () => {
  it('applies defaults when variables are absent', () => {
    const cfg = loadConfig(commonSpec, {});
    expect(cfg.DATA_DIR).toBe('./data');
    expect(cfg.DATABASE_URL).toBeUndefined();
    expect(cfg.LOG_LEVEL).toBe('info');
  });

  it('reports every bad value at once, naming the variable and what was expected', () => {
    let error: unknown;
    try {
      loadConfig({ ...commonSpec, AGENTS_PORT: env.port('agents port', 4001) }, { AGENTS_PORT: 'eighty', DATABASE_URL: 'mysql://x', LOG_LEVEL: 'loud' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems).toHaveLength(3);
    expect(problems.join('\n')).toMatch(/AGENTS_PORT: expected a port number/);
    expect(problems.join('\n')).toMatch(/DATABASE_URL: expected a postgres or postgresql URL/);
    expect(problems.join('\n')).toMatch(/LOG_LEVEL: expected one of fatal, error/);
  });

  it('bounds the SQLite group commit size: 64 by default, 1 (each write alone) at least', () => {
    expect(loadConfig(subgraphSpec, {}).SQLITE_GROUP_COMMIT_MAX).toBe(64);
    expect(loadConfig(subgraphSpec, { SQLITE_GROUP_COMMIT_MAX: '1' }).SQLITE_GROUP_COMMIT_MAX).toBe(1);
    expect(() => loadConfig(subgraphSpec, { SQLITE_GROUP_COMMIT_MAX: '0' })).toThrow(/SQLITE_GROUP_COMMIT_MAX: expected an integer >= 1/);
    expect(() => loadConfig(subgraphSpec, { SQLITE_GROUP_COMMIT_MAX: 'many' })).toThrow(/SQLITE_GROUP_COMMIT_MAX/);
  });

  it('parses booleans and integers strictly', () => {
    const spec = { SEED: env.bool('seed', true), N: env.int('n', 1, 1) };
    expect(loadConfig(spec, { SEED: 'false', N: '7' })).toEqual({ SEED: false, N: 7 });
    expect(() => loadConfig(spec, { SEED: 'maybe' })).toThrow(/SEED: expected true or false/);
    expect(() => loadConfig(spec, { N: '0' })).toThrow(/N: expected an integer >= 1/);
  });
});
