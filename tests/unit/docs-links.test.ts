// The README and the reference pages in docs/ link to each other and to files of the repository:
// every relative link names a file that exists, and every #anchor a heading of its target page
// (GitHub's anchors: lower case, punctuation dropped, spaces as dashes).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/processes.ts';

const pages = [
  'README.md',
  ...readdirSync(join(REPO_ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

function anchors(page: string): Set<string> {
  const text = readFileSync(join(REPO_ROOT, page), 'utf8').replace(/```[\s\S]*?```/g, '');
  const slugs = [...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) =>
    (m[1] ?? '')
      .trim()
      .toLowerCase()
      .replace(/[^\w\- ]/g, '')
      .replace(/ /g, '-'),
  );
  const ids = [...text.matchAll(/<a id="([^"]+)"><\/a>/g)].map((m) => m[1] ?? '');
  return new Set([...slugs, ...ids]);
}

describe('documentation links', () => {
  it.each(pages)('%s links to files and headings that exist', (page) => {
    const text = readFileSync(join(REPO_ROOT, page), 'utf8').replace(/```[\s\S]*?```/g, '');
    const broken: string[] = [];
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (!target || /^(https?:|mailto:)/.test(target)) continue;
      const [path, anchor] = target.split('#');
      const file = path ? normalize(join(dirname(page), path)) : page;
      if (!existsSync(join(REPO_ROOT, file))) broken.push(`${target} (no file ${file})`);
      else if (anchor && file.endsWith('.md') && !anchors(file).has(anchor)) broken.push(`${target} (no heading #${anchor} in ${file})`);
    }
    expect(broken).toEqual([]);
  });
});
