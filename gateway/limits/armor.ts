// Operation limits with GraphQL Armor's rules: depth, aliases, directives and cost as validation
// rules, tokens as a parser limit (graphql-js stops lexing there, so a huge document costs no
// more than the limit). The same rules serve Apollo Server (apolloLimits) and the transports that
// parse and validate themselves (checkOperationLimits: subscriptions, REST).
import { ApolloArmor } from '@escape.tech/graphql-armor';
import { GraphQLError, parse, validate, type DocumentNode, type GraphQLSchema, type ParseOptions, type ValidationContext, type ValidationRule } from 'graphql';
import type { QueryLimits } from './config.ts';

type Limit = 'maxDepth' | 'maxAliases' | 'maxDirectives' | 'maxTokens' | 'maxCost';

/** A limit error: GRAPHQL_VALIDATION_FAILED (HTTP 400), which limit, and its value. Token limit errors are parse errors. */
function limitError(message: string, limit: Limit, max: number): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'GRAPHQL_VALIDATION_FAILED', limit, max } });
}

function reporter(limit: Limit, max: number) {
  return {
    // Armor words every rejection as a "Syntax Error"; it is not one.
    onReject: [
      (context: ValidationContext | null, error: GraphQLError) => context?.reportError(limitError(error.message.replace(/^Syntax Error: /, ''), limit, max)),
    ],
    // Reported through the context above rather than thrown, so all limit errors come together.
    propagateOnRejection: false,
  };
}

export function limitRules(limits: QueryLimits): ValidationRule[] {
  return new ApolloArmor({
    maxDepth: { n: limits.maxDepth, flattenFragments: true, ...reporter('maxDepth', limits.maxDepth) },
    maxAliases: { n: limits.maxAliases, ...reporter('maxAliases', limits.maxAliases) },
    maxDirectives: { n: limits.maxDirectives, ...reporter('maxDirectives', limits.maxDirectives) },
    costLimit: { maxCost: limits.maxCost, ...reporter('maxCost', limits.maxCost) },
    // Tokens are limited by graphql-js's own parser (parseOptions), before any rule runs; field
    // suggestions by Apollo's hideSchemaDetailsFromClientErrors.
    maxTokens: { enabled: false },
    blockFieldSuggestion: { enabled: false },
  }).protect().validationRules;
}

export function parseOptions(limits: QueryLimits): ParseOptions {
  return { maxTokens: limits.maxTokens };
}

/** The ApolloServer options that apply the limits; spread them into its configuration. */
export function apolloLimits(limits: QueryLimits, options: { production: boolean }) {
  return {
    validationRules: limitRules(limits),
    parseOptions: parseOptions(limits),
    // One operation per request: a batch would multiply every limit by its length.
    allowBatchedHttpRequests: false,
    // No "Did you mean ...?" in production: it lists fields a caller did not ask to see.
    hideSchemaDetailsFromClientErrors: options.production,
  };
}

export type LimitCheck = { ok: true; document: DocumentNode } | { ok: false; errors: GraphQLError[] };

/**
 * For transports outside Apollo's request pipeline: parses a document under the token limit (or
 * takes a parsed one) and applies the other limits. Other validation stays with the caller.
 */
export function checkOperationLimits(schema: GraphQLSchema, operation: string | DocumentNode, limits: QueryLimits): LimitCheck {
  let document: DocumentNode;
  if (typeof operation === 'string') {
    try {
      document = parse(operation, parseOptions(limits));
    } catch (err) {
      // Coded as Apollo codes a parse failure, so every transport answers a token bomb the same way.
      const message = err instanceof Error ? err.message : String(err);
      const extensions: Record<string, unknown> = { code: 'GRAPHQL_PARSE_FAILED' };
      // graphql-js words it "more that N tokens"; match either spelling.
      if (/more tha[nt] \d+ tokens/.test(message)) Object.assign(extensions, { limit: 'maxTokens', max: limits.maxTokens });
      return { ok: false, errors: [new GraphQLError(message, { extensions })] };
    }
  } else {
    document = operation;
  }
  const errors = validate(schema, document, limitRules(limits));
  return errors.length === 0 ? { ok: true, document } : { ok: false, errors: [...errors] };
}
