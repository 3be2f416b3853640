import { describe, expect, it } from 'vitest';
import { ConfigError, commonSpec, env, loadConfig } from '../../runtime/config.ts';

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

  it('parses booleans and integers strictly', () => {
    const spec = { SEED: env.bool('seed', true), N: env.int('n', 1, 1) };
    expect(loadConfig(spec, { SEED: 'false', N: '7' })).toEqual({ SEED: false, N: 7 });
    expect(() => loadConfig(spec, { SEED: 'maybe' })).toThrow(/SEED: expected true or false/);
    expect(() => loadConfig(spec, { N: '0' })).toThrow(/N: expected an integer >= 1/);
  });
});
