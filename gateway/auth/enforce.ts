// Field-level access control before execution. authorizeOperation removes from the operation
// every field the caller may not see, so no subgraph is asked for it, and lists the denials;
// applyDenials then puts null where those fields were in the result (bubbling through non-null
// types exactly like GraphQL does for a field error) with a FORBIDDEN or UNAUTHENTICATED error
// at each concrete response path. Both are pure; every transport (HTTP, subscriptions, REST)
// runs the same two steps around the same execution core.
//
// Decisions are per (parent type, field) and conservative for abstract types: a field selected
// on an interface is denied when the interface field or any implementation's field requires what
// the caller lacks, and a field returning an abstract type requires what any possible type does.
import {
  BREAK,
  GraphQLError,
  Kind,
  getDirectiveValues,
  getNamedType,
  GraphQLIncludeDirective,
  GraphQLSkipDirective,
  isAbstractType,
  isCompositeType,
  isObjectType,
  parseType,
  visit,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLField,
  type GraphQLFormattedError,
  type GraphQLNamedType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionNode,
  type SelectionSetNode,
  type TypeNode,
} from 'graphql';
import type { Principal } from './principal.ts';
import type { AccessPolicy, Requirement } from './supergraph-policy.ts';

/**
 * Added (as an alias of __typename) where a denial depends on an object's concrete type, and as
 * the placeholder for a selection set left empty; removed from the result by applyDenials.
 */
export const HIDDEN_TYPENAME = '_authzTypename';

export interface DenialError {
  message: string;
  code: 'FORBIDDEN' | 'UNAUTHENTICATED';
  /** For FORBIDDEN: the alternatives (OR) of scope sets (AND) that would have been enough. */
  requiredScopes?: string[][];
  /** For FORBIDDEN: what the caller lacks for the alternative closest to what it holds. */
  missingScopes?: string[];
}

export interface ResponseStep {
  /** The response key: the alias, else the field name. */
  key: string;
  /** The field's type as printed, e.g. "[Agent!]!": where lists and non-null sit. */
  type: string;
}

export interface Denial {
  /** The fields from the root to the denied one (the last step). */
  steps: ResponseStep[];
  /** Concrete types whose objects lose the field; null means every object at that place. */
  types: string[] | null;
  error: DenialError;
}

export interface Authorization {
  /** What to execute instead of the request's document, or null when nothing is left to ask for. */
  document: DocumentNode | null;
  denials: Denial[];
  /** False when the caller may see everything: document is the request's own, results pass as they are. */
  rewritten: boolean;
}

export interface AuthorizeInput {
  /** The API schema the operation was validated against. */
  schema: GraphQLSchema;
  policy: AccessPolicy;
  document: DocumentNode;
  operationName?: string | null;
  /** The coerced variables, to tell which @skip/@include selections reach the response. */
  variables?: Readonly<Record<string, unknown>> | null;
  principal: Principal;
}

const META_FIELDS = new Set(['__typename', '__schema', '__type']);

export function authorizeOperation(input: AuthorizeInput): Authorization {
  const { schema, policy, document, principal } = input;
  const operation = selectOperation(document, input.operationName);
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  assertNoReservedAlias(document);

  const held = new Set(principal.scopes);
  const verdicts = new Map<string, DenialError | null>();
  function decide(parent: GraphQLCompositeType, fieldName: string): DenialError | null {
    const coordinate = `${parent.name}.${fieldName}`;
    let verdict = verdicts.get(coordinate);
    if (verdict === undefined) {
      verdict = judge(coordinate, requirementsOf(schema, policy, parent, fieldName), principal, held);
      verdicts.set(coordinate, verdict);
    }
    return verdict;
  }

  // Pass 1: remove denied fields wherever they are (in skipped selections too, so what is never
  // asked for does not depend on evaluating @skip/@include right).
  let removedAny = false;
  const rewrittenFragments = new Map<string, { selectionSet: SelectionSetNode; removed: boolean }>();

  function rewriteFragment(name: string): { removed: boolean } {
    const done = rewrittenFragments.get(name);
    if (done) return done;
    const fragment = fragments.get(name);
    const type = fragment ? schema.getType(fragment.typeCondition.name.value) : undefined;
    if (!fragment || !isCompositeType(type)) return { removed: false };
    // Validated documents have no fragment cycles; the marker only keeps a bad one from looping.
    rewrittenFragments.set(name, { selectionSet: fragment.selectionSet, removed: false });
    const result = rewriteSet(fragment.selectionSet, type);
    rewrittenFragments.set(name, { selectionSet: result.set, removed: result.removed });
    return result;
  }

  /** removed: a field of this object (directly, or through its fragments) was removed. */
  function rewriteSet(set: SelectionSetNode, parent: GraphQLCompositeType): { set: SelectionSetNode; removed: boolean } {
    let removed = false;
    const kept: SelectionNode[] = [];
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) {
        const name = selection.name.value;
        const field = META_FIELDS.has(name) ? undefined : fieldOf(parent, name);
        if (!field) {
          kept.push(selection);
          continue;
        }
        if (decide(parent, name)) {
          removed = true;
          removedAny = true;
          continue;
        }
        const childType = getNamedType(field.type);
        if (!selection.selectionSet || !isCompositeType(childType)) {
          kept.push(selection);
          continue;
        }
        const child = rewriteSet(selection.selectionSet, childType);
        const childSet = child.removed && isAbstractType(childType) ? withHiddenTypename(child.set) : child.set;
        kept.push({ ...selection, selectionSet: childSet });
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const type = selection.typeCondition ? schema.getType(selection.typeCondition.name.value) : parent;
        if (!isCompositeType(type)) {
          kept.push(selection);
          continue;
        }
        const inner = rewriteSet(selection.selectionSet, type);
        removed ||= inner.removed;
        kept.push({ ...selection, selectionSet: inner.set });
      } else {
        removed ||= rewriteFragment(selection.name.value).removed;
        kept.push(selection);
      }
    }
    // An empty selection set is not GraphQL; the placeholder asks for nothing of value.
    if (kept.length === 0) kept.push(hiddenTypename());
    return { set: { ...set, selections: kept }, removed };
  }

  const rootType = schema.getRootType(operation.operation);
  if (!rootType) throw operationError(`The schema has no ${operation.operation} type`);
  const root = rewriteSet(operation.selectionSet, rootType);

  // Pass 2: where the removed fields would have been in the response.
  const denials = new Map<string, Denial>();
  const variables = input.variables ?? null;

  function collect(
    set: SelectionSetNode,
    parent: GraphQLCompositeType,
    scope: ReadonlySet<string>,
    objectType: GraphQLCompositeType,
    steps: ResponseStep[],
    inFragments: ReadonlySet<string>,
  ): void {
    for (const selection of set.selections) {
      if (!reachesResponse(selection, variables)) continue;
      if (selection.kind === Kind.FIELD) {
        const name = selection.name.value;
        const field = META_FIELDS.has(name) ? undefined : fieldOf(parent, name);
        if (!field) continue;
        const step: ResponseStep = { key: selection.alias?.value ?? name, type: String(field.type) };
        const verdict = decide(parent, name);
        if (verdict) {
          addDenial(denials, [...steps, step], sameSet(scope, possibleTypes(schema, objectType)) ? null : [...scope].sort(), verdict);
          continue;
        }
        const childType = getNamedType(field.type);
        if (selection.selectionSet && isCompositeType(childType)) {
          collect(selection.selectionSet, childType, possibleTypes(schema, childType), childType, [...steps, step], inFragments);
        }
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const type = selection.typeCondition ? schema.getType(selection.typeCondition.name.value) : parent;
        if (!isCompositeType(type)) continue;
        const narrowed = intersect(scope, possibleTypes(schema, type));
        if (narrowed.size > 0) collect(selection.selectionSet, type, narrowed, objectType, steps, inFragments);
      } else {
        const name = selection.name.value;
        const fragment = fragments.get(name);
        const type = fragment ? schema.getType(fragment.typeCondition.name.value) : undefined;
        if (!fragment || !isCompositeType(type) || inFragments.has(name)) continue;
        const narrowed = intersect(scope, possibleTypes(schema, type));
        if (narrowed.size > 0) collect(fragment.selectionSet, type, narrowed, objectType, steps, new Set([...inFragments, name]));
      }
    }
  }
  collect(operation.selectionSet, rootType, new Set([rootType.name]), rootType, [], new Set());

  if (!removedAny) return { document, denials: [], rewritten: false };
  const rewrittenOperation: OperationDefinitionNode = { ...operation, selectionSet: root.set };
  return {
    document: onlyPlaceholders(root.set) ? null : assemble(rewrittenOperation, rewrittenFragments, fragments),
    denials: [...denials.values()],
    rewritten: true,
  };
}

/**
 * authorizeOperation, remembered. Its answer depends only on the schema, the access policy, the
 * document, the operation name, whether the caller is anonymous, the scopes it holds and, through
 * @skip/@include, the variables: so per document (Apollo Server hands out the same parsed object
 * for the same query until its document cache drops it or the schema changes) it keeps one answer
 * per operation name and scope set, and none for documents with @skip or @include. Entries go
 * with their document (a WeakMap), are dropped when the schema or policy differs from the one
 * they were made for (a supergraph reload), and are at most `maxPerDocument` per document.
 * Refusals (thrown errors) are not remembered.
 */
export function createAuthorizer(maxPerDocument = 64): (input: AuthorizeInput) => Authorization {
  const byDocument = new WeakMap<DocumentNode, { schema: GraphQLSchema; policy: AccessPolicy; cacheable: boolean; answers: Map<string, Authorization> }>();
  const scopeKeys = new WeakMap<Principal, string>();
  return (input) => {
    let entry = byDocument.get(input.document);
    if (!entry || entry.schema !== input.schema || entry.policy !== input.policy) {
      entry = { schema: input.schema, policy: input.policy, cacheable: !hasConditionalSelections(input.document), answers: new Map() };
      byDocument.set(input.document, entry);
    }
    if (!entry.cacheable) return authorizeOperation(input);
    const { principal } = input;
    let scopes = scopeKeys.get(principal);
    if (scopes === undefined) {
      scopes = principal.kind === 'anonymous' ? '\u0000anonymous' : [...new Set(principal.scopes)].sort().join(' ');
      scopeKeys.set(principal, scopes);
    }
    const key = `${input.operationName ?? ''}\n${scopes}`;
    let answer = entry.answers.get(key);
    if (!answer) {
      answer = authorizeOperation(input);
      if (entry.answers.size >= maxPerDocument) entry.answers.clear();
      entry.answers.set(key, answer);
    }
    return answer;
  };
}

/** Whether any selection carries @skip or @include, whose outcome depends on the variables. */
function hasConditionalSelections(document: DocumentNode): boolean {
  let found = false;
  visit(document, {
    Directive(node) {
      if (node.name.value === 'skip' || node.name.value === 'include') {
        found = true;
        return BREAK;
      }
      return undefined;
    },
  });
  return found;
}

function selectOperation(document: DocumentNode, operationName: string | null | undefined): OperationDefinitionNode {
  const operations = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
  const operation = operationName ? operations.find((o) => o.name?.value === operationName) : operations.length === 1 ? operations[0] : undefined;
  if (!operation) throw operationError(operationName ? `Unknown operation named "${operationName}"` : 'Must provide the name of the operation to run');
  return operation;
}

function operationError(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'OPERATION_RESOLUTION_FAILURE' } });
}

function assertNoReservedAlias(document: DocumentNode): void {
  visit(document, {
    Field(node) {
      if (node.alias?.value === HIDDEN_TYPENAME)
        throw new GraphQLError(`The alias "${HIDDEN_TYPENAME}" is reserved`, { nodes: [node], extensions: { code: 'BAD_USER_INPUT' } });
    },
  });
}

function fieldOf(parent: GraphQLCompositeType, name: string): GraphQLField<unknown, unknown> | undefined {
  return 'getFields' in parent ? parent.getFields()[name] : undefined;
}

function possibleTypes(schema: GraphQLSchema, type: GraphQLCompositeType): Set<string> {
  return new Set(isAbstractType(type) ? schema.getPossibleTypes(type).map((t) => t.name) : [type.name]);
}

function intersect(a: ReadonlySet<string>, b: ReadonlySet<string>): Set<string> {
  return new Set([...a].filter((x) => b.has(x)));
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x));
}

/** Every rule that applies to selecting parent.fieldName, for every concrete type it may be. */
function requirementsOf(schema: GraphQLSchema, policy: AccessPolicy, parent: GraphQLCompositeType, fieldName: string): Requirement[] {
  const out: Requirement[] = [];
  const push = (r: Requirement | undefined) => {
    if (r) out.push(r);
  };
  const parents: GraphQLCompositeType[] = isAbstractType(parent) ? [parent, ...schema.getPossibleTypes(parent)] : [parent];
  for (const p of parents) {
    push(policy.types.get(p.name));
    push(policy.fields.get(`${p.name}.${fieldName}`));
    // A rule on an interface field binds every implementation of it.
    if (isObjectType(p)) for (const i of p.getInterfaces()) push(policy.fields.get(`${i.name}.${fieldName}`));
    const field = fieldOf(p, fieldName);
    if (!field) continue;
    const returned: GraphQLNamedType = getNamedType(field.type);
    push(policy.types.get(returned.name));
    if (isAbstractType(returned)) for (const t of schema.getPossibleTypes(returned)) push(policy.types.get(t.name));
  }
  return out;
}

function judge(coordinate: string, requirements: Requirement[], principal: Principal, held: ReadonlySet<string>): DenialError | null {
  const anonymous = principal.kind === 'anonymous';
  const unauthenticated: DenialError = { code: 'UNAUTHENTICATED', message: `Authentication is required to access ${coordinate}` };
  for (const requirement of requirements) {
    if (requirement.authenticated && anonymous) return unauthenticated;
    for (const alternatives of requirement.scopes) {
      if (alternatives.some((all) => all.every((s) => held.has(s)))) continue;
      if (anonymous) return unauthenticated;
      const missing = alternatives.map((all) => all.filter((s) => !held.has(s))).sort((a, b) => a.length - b.length)[0] ?? [];
      return {
        code: 'FORBIDDEN',
        message: `Not allowed to access ${coordinate}: requires scope ${alternatives.map((all) => all.join(' and ')).join(' or ')}`,
        requiredScopes: alternatives.map((all) => [...all]),
        missingScopes: missing,
      };
    }
  }
  return null;
}

function reachesResponse(selection: SelectionNode, variables: Readonly<Record<string, unknown>> | null): boolean {
  try {
    const skip = getDirectiveValues(GraphQLSkipDirective, selection, variables ?? undefined);
    if (skip?.if === true) return false;
    const include = getDirectiveValues(GraphQLIncludeDirective, selection, variables ?? undefined);
    if (include?.if === false) return false;
  } catch {
    // A variable we were not given: count the selection as present, which can only add a denial.
  }
  return true;
}

function addDenial(denials: Map<string, Denial>, steps: ResponseStep[], types: string[] | null, error: DenialError): void {
  const key = JSON.stringify(steps.map((s) => s.key));
  const existing = denials.get(key);
  if (!existing) {
    denials.set(key, { steps, types, error });
    return;
  }
  // The same response key reached through several fragments: one denial for all their types.
  existing.types = existing.types === null || types === null ? null : [...new Set([...existing.types, ...types])].sort();
}

function hiddenTypename(): FieldNode {
  return { kind: Kind.FIELD, alias: { kind: Kind.NAME, value: HIDDEN_TYPENAME }, name: { kind: Kind.NAME, value: '__typename' } };
}

function withHiddenTypename(set: SelectionSetNode): SelectionSetNode {
  if (set.selections.some((s) => s.kind === Kind.FIELD && s.alias?.value === HIDDEN_TYPENAME)) return set;
  return { ...set, selections: [hiddenTypename(), ...set.selections] };
}

function onlyPlaceholders(set: SelectionSetNode): boolean {
  return set.selections.every((s) =>
    s.kind === Kind.FIELD ? s.alias?.value === HIDDEN_TYPENAME : s.kind === Kind.INLINE_FRAGMENT ? onlyPlaceholders(s.selectionSet) : false,
  );
}

/** The operation with the fragments it still spreads and the variables it still uses. */
function assemble(
  operation: OperationDefinitionNode,
  rewritten: ReadonlyMap<string, { selectionSet: SelectionSetNode }>,
  original: ReadonlyMap<string, FragmentDefinitionNode>,
): DocumentNode {
  const used = new Set<string>();
  const variables = new Set<string>();
  const pending: SelectionSetNode[] = [];
  const scan = (node: SelectionSetNode | OperationDefinitionNode) =>
    visit(node, {
      FragmentSpread(spread) {
        const name = spread.name.value;
        if (used.has(name)) return;
        used.add(name);
        const set = rewritten.get(name)?.selectionSet ?? original.get(name)?.selectionSet;
        if (set) pending.push(set);
      },
      Variable(variable) {
        variables.add(variable.name.value);
      },
    });
  // Without its definitions: a variable counts as used when something other than its own
  // definition (a field argument, a directive on the operation or a selection) refers to it.
  scan({ ...operation, variableDefinitions: [] });
  for (let set = pending.shift(); set; set = pending.shift()) scan(set);
  const fragments: FragmentDefinitionNode[] = [];
  for (const [name, fragment] of original) {
    if (!used.has(name)) continue;
    fragments.push({ ...fragment, selectionSet: rewritten.get(name)?.selectionSet ?? fragment.selectionSet });
  }
  // Fragment directives' variables count as used as well.
  for (const fragment of fragments)
    visit({ ...fragment, selectionSet: { kind: Kind.SELECTION_SET, selections: [] } }, { Variable: (v) => void variables.add(v.name.value) });
  return {
    kind: Kind.DOCUMENT,
    definitions: [
      { ...operation, variableDefinitions: operation.variableDefinitions?.filter((v) => variables.has(v.variable.name.value)) ?? [] },
      ...fragments,
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// Putting the denials into a result

/** The parts of an execution result this module reads and writes; E is how its errors are held. */
export interface ExecutionResultLike<E extends GraphQLFormattedError = GraphQLFormattedError> {
  data?: Record<string, unknown> | null;
  errors?: readonly E[];
  extensions?: Record<string, unknown>;
}

interface Slot {
  parent: Record<string | number, unknown> | unknown[];
  key: string | number;
  /** A null here is not allowed: it moves to the nearest nullable place above. */
  nonNull: boolean;
}

/**
 * The result as the caller sees it: null (bubbled like GraphQL does) where each denied field
 * would be, one error per concrete path, the hidden typenames gone. The input is not modified.
 * For a document of null, pass `{ data: {} }`. The errors added are GraphQLError instances (with
 * path and extensions), so Apollo's error formatting keeps them as they are.
 */
export function applyDenials<E extends GraphQLFormattedError>(
  result: ExecutionResultLike<E>,
  authorization: Authorization,
): ExecutionResultLike<E | GraphQLError> {
  if (!authorization.rewritten || result.data === undefined) return result;
  if (result.data === null) {
    // Execution already lost the whole response; only root-level denials still have a place.
    const rootErrors = authorization.denials.filter((d) => d.steps.length === 1).map((d) => denialError(d, [d.steps[0]!.key]));
    return rootErrors.length === 0 ? result : { ...result, errors: [...(result.errors ?? []), ...rootErrors] };
  }
  const holder: { data: unknown } = { data: structuredClone(result.data) };
  const errors: GraphQLError[] = [];
  const targets: Slot[] = [];
  for (const denial of authorization.denials) {
    locate(holder.data, denial, 0, [], [{ parent: holder as unknown as Record<string, unknown>, key: 'data', nonNull: false }], (path, slots) => {
      errors.push(denialError(denial, path));
      targets.push(nullTarget(slots));
    });
  }
  for (const t of targets) (t.parent as Record<string | number, unknown>)[t.key] = null;
  stripHidden(holder.data);
  return { ...result, data: holder.data as Record<string, unknown> | null, errors: [...(result.errors ?? []), ...errors] };
}

function denialError(denial: Denial, path: (string | number)[]): GraphQLError {
  const { message, ...extensions } = denial.error;
  return new GraphQLError(message, { path, extensions });
}

function locate(
  value: unknown,
  denial: Denial,
  index: number,
  path: (string | number)[],
  slots: Slot[],
  found: (path: (string | number)[], slots: Slot[]) => void,
): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return;
  const object = value as Record<string, unknown>;
  const step = denial.steps[index]!;
  const type = parseType(step.type);
  const slot: Slot = { parent: object, key: step.key, nonNull: type.kind === Kind.NON_NULL_TYPE };
  if (index === denial.steps.length - 1) {
    if (denial.types !== null) {
      const typename = object[HIDDEN_TYPENAME];
      if (typeof typename !== 'string' || !denial.types.includes(typename)) return;
    }
    found([...path, step.key], [...slots, slot]);
    return;
  }
  descend(object[step.key], unwrapNonNull(type), denial, index + 1, [...path, step.key], [...slots, slot], found);
}

function descend(
  value: unknown,
  type: TypeNode,
  denial: Denial,
  next: number,
  path: (string | number)[],
  slots: Slot[],
  found: (path: (string | number)[], slots: Slot[]) => void,
): void {
  if (value === null || value === undefined) return;
  if (type.kind === Kind.LIST_TYPE) {
    if (!Array.isArray(value)) return;
    const item = type.type;
    value.forEach((element, i) => {
      descend(
        element,
        unwrapNonNull(item),
        denial,
        next,
        [...path, i],
        [...slots, { parent: value, key: i, nonNull: item.kind === Kind.NON_NULL_TYPE }],
        found,
      );
    });
    return;
  }
  locate(value, denial, next, path, slots, found);
}

function unwrapNonNull(type: TypeNode): TypeNode {
  return type.kind === Kind.NON_NULL_TYPE ? type.type : type;
}

/** The nearest place at or above the denied field that may hold null. */
function nullTarget(slots: Slot[]): Slot {
  for (let i = slots.length - 1; i >= 0; i--) if (!slots[i]!.nonNull) return slots[i]!;
  return slots[0]!;
}

function stripHidden(value: unknown): void {
  if (Array.isArray(value)) {
    for (const item of value) stripHidden(item);
  } else if (typeof value === 'object' && value !== null) {
    const object = value as Record<string, unknown>;
    delete object[HIDDEN_TYPENAME];
    for (const key of Object.keys(object)) stripHidden(object[key]);
  }
}
