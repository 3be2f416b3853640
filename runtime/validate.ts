import { badInput } from './errors.ts';

// Input checks shared by every subgraph: each failure is a BAD_USER_INPUT that names the field,
// thrown before anything is written.

export function text(value: string, field: string, opts: { min?: number; max: number }): string {
  const v = value.trim();
  const min = opts.min ?? 0;
  if (v.length < min) throw badInput(`${field} must have at least ${min} character${min === 1 ? '' : 's'}`, { field });
  if (v.length > opts.max) throw badInput(`${field} must have at most ${opts.max} characters, got ${v.length}`, { field });
  return v;
}

export function optionalText(value: string | null | undefined, field: string, max: number): string | null {
  if (value === null || value === undefined) return null;
  const v = text(value, field, { max });
  return v === '' ? null : v;
}

export function intInRange(value: number, field: string, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw badInput(`${field} must be an integer from ${min} to ${max}, got ${value}`, { field });
  }
  return value;
}

export function numberInRange(value: number, field: string, min: number, max: number): number {
  if (!Number.isFinite(value) || value < min || value > max) {
    throw badInput(`${field} must be a number from ${min} to ${max}, got ${value}`, { field });
  }
  return value;
}

export function httpUrl(value: string, field: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw badInput(`${field} must be an absolute http(s) URL, got "${value.slice(0, 200)}"`, { field });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw badInput(`${field} must be an http(s) URL, got protocol "${url.protocol}"`, { field });
  }
  if (value.length > 2048) throw badInput(`${field} must have at most 2048 characters`, { field });
  return value;
}

export function stringList(values: readonly string[], field: string, opts: { maxItems: number; maxLength: number }): string[] {
  if (values.length > opts.maxItems) throw badInput(`${field} must have at most ${opts.maxItems} items`, { field });
  return values.map((v, i) => text(v, `${field}[${i}]`, { min: 1, max: opts.maxLength }));
}

/** JSON inputs are stored as text; this bounds their size so one request cannot bloat a row. */
export function jsonValue(value: unknown, field: string, maxBytes = 256 * 1024): string {
  const encoded = JSON.stringify(value ?? null);
  if (Buffer.byteLength(encoded) > maxBytes) throw badInput(`${field} must be at most ${maxBytes} bytes of JSON`, { field });
  return encoded;
}
