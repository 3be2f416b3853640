// Loaded with `node --require` before the gateway (package.json `gateway` script), so it runs
// before @apollo/gateway is loaded. @apollo/federation-internals is compiled by TypeScript to
// CommonJS whose package entry re-exports its ~300 functions as getters (`__exportStar`), on an
// object too large for V8 to cache lookups on: every `federation_internals_1.isLeafType(...)` in
// @apollo/gateway's result shaping is a dictionary lookup plus a getter call plus another lookup.
// That was 8-10 % of the gateway's CPU on list and join queries (bench/README.md).
//
// This replaces the package's cached exports with a plain copy of the same values, made fast for
// lookups, before anything else requires it. The functions and classes are the very same objects;
// only the indirection goes. The package assigns its exports once, while loading (none is
// reassigned later), so a copy taken after loading cannot go stale. CommonJS only: the file is
// plain JavaScript so that it needs no build and no TypeScript loader.
'use strict';

const { createRequire } = require('node:module');

// Resolved the way @apollo/gateway resolves it, so it is the copy the gateway uses.
const gatewayRequire = createRequire(require.resolve('@apollo/gateway'));
const id = gatewayRequire.resolve('@apollo/federation-internals');
const original = gatewayRequire('@apollo/federation-internals');
const cached = require.cache[id];

if (cached && cached.exports === original && !original.__plainExports) {
  const plain = {};
  for (const key of Object.keys(original)) plain[key] = original[key];
  Object.defineProperty(plain, '__esModule', { value: true });
  Object.defineProperty(plain, '__plainExports', { value: true });
  // V8 switches an object to fast (inline-cacheable) properties once a lookup goes through it as
  // a prototype; a plain copy of 300 properties would otherwise stay a dictionary.
  void Object.create(plain).__esModule;
  cached.exports = plain;
}
