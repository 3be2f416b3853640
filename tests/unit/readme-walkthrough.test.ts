// The README's walkthrough stays true: every GraphQL operation in it is valid against the graph
// clients see (schema/api.graphql), and every REST call in it names a route and method of the
// OpenAPI document. Placeholders such as <task id> stand for any value.
import { readFileSync } from 'node:fs';
import { buildSchema, parse, validate } from 'graphql';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/processes.ts';

const readme = readFileSync(`${REPO_ROOT}README.md`, 'utf8');
const section = readme.slice(readme.indexOf('## Walkthrough: the main job'), readme.indexOf('## Architecture'));
const fill = (text: string) => text.replace(/<[^>]+>/g, 'x');

describe('README walkthrough', () => {
  it('has GraphQL operations valid against the API schema', () => {
    const schema = buildSchema(readFileSync(`${REPO_ROOT}schema/api.graphql`, 'utf8'));
    const blocks = [...section.matchAll(/```graphql\n([\s\S]*?)```/g)].flatMap((m) =>
      (m[1] ?? '').replace(/#.*$/gm, '').split(/\n(?=mutation |\{ |subscription |query )/),
    );
    const inline = [...section.matchAll(/`((?:subscription |mutation |query )?\{[^`]*\})`/g)].map((m) => m[1] ?? '');
    const operations = [...blocks, ...inline].map((op) => op.trim()).filter(Boolean);
    expect(operations.length).toBeGreaterThan(10);
    for (const op of operations)
      expect(
        validate(schema, parse(fill(op))).map((e) => e.message),
        op,
      ).toEqual([]);
  });

  it('calls REST routes the OpenAPI document has', () => {
    const document = JSON.parse(readFileSync(`${REPO_ROOT}gateway/rest/generated/openapi.json`, 'utf8')) as { paths: Record<string, Record<string, unknown>> };
    const routes = Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((method) => ({ method: method.toUpperCase(), pattern: new RegExp(`^${path.replace(/\{[^}]+\}/g, '[^/]+')}$`) })),
    );
    const calls = [...fill(section).matchAll(/curl -s (?:-X (\w+) )?'?localhost:4000(\/v1\/[^\s'?]*)[^\n]*?( -d )?/g)].map((m) => ({
      method: m[1] ?? (m[3] ? 'POST' : 'GET'),
      path: fill(m[2] ?? ''),
    }));
    expect(calls.length).toBeGreaterThan(8);
    for (const call of calls)
      expect(
        routes.some((r) => r.method === call.method && r.pattern.test(call.path)),
        `${call.method} ${call.path}`,
      ).toBe(true);
  });
});
