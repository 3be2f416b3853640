// The transport-neutral core behind graphql-ws and SSE: checks an operation against the served
// API schema, then runs queries and mutations through Apollo Server (the same path as HTTP) and
// subscriptions as federated streams (planned by the gateway's query planner, subscribed upstream
// over graphql-ws, each event resolved across subgraphs). It knows no transport: adapters turn
// its outcomes into their messages.
import type { GraphQLDataSource } from '@apollo/gateway';
import type { GraphQLRequest, GraphQLResponse } from '@apollo/server';
import {
  getOperationAST,
  GraphQLError,
  Kind,
  print,
  type FormattedExecutionResult,
  type GraphQLFormattedError,
  type ParseOptions,
  type ValidationRule,
} from 'graphql';
import { IDENTITY_HEADER, type IdentityService } from '../../runtime/identity.ts';
import type { Logger } from '../../runtime/logger.ts';
import { applyDenials, authorizeOperation, type Authorization } from '../auth/enforce.ts';
import type { AccessPolicy } from '../auth/supergraph-policy.ts';
import { EventQueue } from '../../runtime/event-queue.ts';
import { checkOperation, type CheckedOperation, type OperationRequest } from '../../runtime/subscriptions.ts';
import type { GatewayContext } from '../context.ts';
import { eventExecutor, type ErrorFormatter } from './event-execution.ts';
import { type Planning, SupergraphNotLoadedError, type SubscriptionPlan, type Supergraph } from './planning.ts';
import { SharedStream } from './shared-stream.ts';
import { identityClaims } from '../auth/principal.ts';
import { authorizationKey, streamContext } from './stream-identity.ts';
import type { UpstreamSubscriptions } from './upstream.ts';
import { findNulCharacter, nulCharacterError } from '../../runtime/nul-characters.ts';

export interface PreparedOperation {
  operation: CheckedOperation;
  supergraph: Supergraph;
  /** Subscriptions only. */
  plan?: SubscriptionPlan;
  /** Subscriptions, once authorized: what the caller may not see, taken out of every event. */
  authorization?: Authorization;
  /** Subscriptions: set by authorize() once the caller's budget and the access rules allowed it. */
  authorized?: true;
}

/** A subscription the core may run: authorize() checked the caller. */
type AuthorizedSubscription = Required<Pick<PreparedOperation, 'plan' | 'authorized'>> & PreparedOperation;

export type OperationOutcome =
  | { kind: 'single'; result: FormattedExecutionResult }
  | { kind: 'stream'; stream: AsyncGenerator<FormattedExecutionResult, undefined, unknown> };

export interface RunHooks {
  /** The client fell more than the queue limit behind; the adapter drops its connection. */
  onOverflow(): void;
}

export interface SubscriptionStats {
  /** Client subscriptions open across all transports. */
  clientSubscriptions: number;
  /** Distinct upstream streams those share (identical operations are deduplicated). */
  sharedStreams: number;
  /** Subscriptions open from the gateway to the subgraphs. */
  upstreamSubscriptions: number;
}

export interface CoreOptions {
  /** Runs a query or mutation as apollo.executeOperation does (gateway/prepared-operations.ts executeOperation). */
  execute(request: GraphQLRequest, contextValue: GatewayContext): Promise<GraphQLResponse>;
  planning: Planning;
  /** The gateway's data sources by subgraph name (kept current by buildService). */
  dataSources: ReadonlyMap<string, GraphQLDataSource<GatewayContext>>;
  /** Client headers the gateway forwards to subgraphs (FORWARD_HEADERS). */
  forwardHeaders: readonly string[];
  queueLimit: number;
  /** Subgraphs whose subscription streams act as the subscriber's subject (SUBSCRIPTION_PER_SUBJECT_SUBGRAPHS). */
  perSubjectSubgraphs?: ReadonlySet<string>;
  /** Validation rules beyond graphql-js's; give the ones Apollo Server gets (limits...), so subscriptions obey them too. */
  validationRules: readonly ValidationRule[];
  /** Apollo Server's parse options (the token limit). */
  parseOptions?: ParseOptions;
  /** The access rules of the supergraph served now (undefined before the first load). */
  policy: () => AccessPolicy | undefined;
  /** Counts a subscription start against the caller's budget; an error (RATE_LIMITED) when refused. */
  admitSubscription: (context: GatewayContext) => Promise<GraphQLError | null>;
  /** Trusted documents (gateway/trusted-documents): the request to run (an id replaced by its text), or the refusal. */
  admitDocument?: (request: OperationRequest) => OperationRequest | GraphQLError;
  identity: IdentityService;
  upstream: UpstreamSubscriptions;
  format: ErrorFormatter;
  logger: Logger;
}

// Per-request tracing headers: forwarded, but they do not change what a subscription delivers,
// so clients differing only in them share one stream.
const PER_REQUEST_HEADERS = new Set(['x-request-id', 'traceparent', 'tracestate']);

const SHUTTING_DOWN: GraphQLFormattedError = { message: 'The gateway is shutting down; subscribe again', extensions: { code: 'SHUTTING_DOWN' } };
const EXPIRED: GraphQLFormattedError = {
  message: 'The credentials of this subscription expired; subscribe again with fresh ones',
  extensions: { code: 'UNAUTHENTICATED', reason: 'expired' },
};
// setTimeout's limit (about 24.8 days); a later expiry is checked again when this one fires.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** JSON with object keys sorted, so equal variables give equal keys. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export class GatewayOperations {
  private readonly streams = new Map<string, SharedStream>();
  private clients = 0;
  /** Numbers the resuming subscriptions, which never share a stream. */
  private resumed = 0;
  private closed = false;

  constructor(private readonly options: CoreOptions) {}

  /** Errors (GraphQLError, unformatted) mean the operation must not run: a protocol-level refusal. */
  prepare(request: OperationRequest): PreparedOperation | GraphQLError[] {
    let supergraph: Supergraph;
    try {
      supergraph = this.options.planning.current();
    } catch (err) {
      if (!(err instanceof SupergraphNotLoadedError)) throw err;
      return [new GraphQLError('The gateway is starting: no supergraph is loaded yet', { extensions: { code: 'SERVICE_UNAVAILABLE' } })];
    }
    const admitted = this.options.admitDocument ? this.options.admitDocument(request) : request;
    if (admitted instanceof GraphQLError) return [admitted];
    const operation = checkOperation(supergraph.apiSchema, admitted, this.options.validationRules, this.options.parseOptions);
    if (Array.isArray(operation)) return operation;
    if (operation.operation.operation !== 'subscription') return { operation, supergraph };
    // Queries and mutations meet this check in Apollo Server's executor (gateway/nul-character-refusal.ts).
    const nul = findNulCharacter(operation.document, operation.variables);
    if (nul) return [nulCharacterError(nul)];
    try {
      return { operation, supergraph, plan: supergraph.plan(operation.document, operation.query, operation.operationName) };
    } catch (err) {
      // A valid operation the planner cannot plan is a bug, masked and logged by format().
      return [new GraphQLError(`Could not plan the subscription: ${(err as Error).message}`, { originalError: err as Error })];
    }
  }

  /**
   * Before a subscription runs: the caller's subscription budget, then the access rules. A denied
   * root field refuses the subscription (errors); denied nested fields are taken out of the
   * operation, which is planned again, and come back as null with an error in every event. Queries
   * and mutations pass unchanged: Apollo Server's executor (withAccessControl) authorizes them.
   */
  async authorize(prepared: PreparedOperation, context: GatewayContext): Promise<PreparedOperation | GraphQLError[]> {
    if (!prepared.plan) return prepared;
    const refused = await this.options.admitSubscription(context);
    if (refused) return [refused];
    const policy = this.options.policy();
    if (!policy) return [new GraphQLError('Access rules not loaded yet', { extensions: { code: 'SERVICE_UNAVAILABLE' } })];
    const { supergraph, operation } = prepared;
    const authorization = authorizeOperation({
      schema: supergraph.apiSchema,
      policy,
      document: operation.document,
      operationName: operation.operationName ?? null,
      variables: operation.variables,
      principal: context.principal,
    });
    let authorized: PreparedOperation = prepared;
    if (authorization.rewritten) {
      const document = authorization.document;
      // One root field, so nothing left means it was the one denied.
      if (!document) return (applyDenials({ data: {} }, authorization).errors ?? []).filter((e): e is GraphQLError => e instanceof GraphQLError);
      const definition = getOperationAST(document, operation.operationName);
      if (!definition) return [new GraphQLError('The authorized operation is missing', { extensions: { code: 'INTERNAL_SERVER_ERROR' } })];
      const query = print(document);
      try {
        const plan = supergraph.plan(document, query, operation.operationName);
        authorized = { supergraph, plan, authorization, operation: { ...operation, query, document, operation: definition } };
      } catch (err) {
        return [new GraphQLError(`Could not plan the subscription: ${(err as Error).message}`, { originalError: err as Error })];
      }
    }
    return { ...authorized, authorized: true };
  }

  formatErrors(errors: readonly GraphQLError[]): GraphQLFormattedError[] {
    // extensions.http tells the transport its status (as to Apollo, which drops it too); clients never see it.
    return errors.map((e) => {
      const { extensions, ...json } = e.toJSON();
      const { http: _status, ...rest } = extensions ?? {};
      return this.options.format(extensions ? { ...json, extensions: rest } : json, e);
    });
  }

  async run(prepared: PreparedOperation, context: GatewayContext, hooks: RunHooks): Promise<OperationOutcome> {
    if (this.closed) return { kind: 'single', result: { errors: [SHUTTING_DOWN] } };
    if (!prepared.plan) return { kind: 'single', result: await this.execute(prepared.operation, context) };
    if (!prepared.authorized) throw new Error('a subscription must be authorized before it runs');
    return { kind: 'stream', stream: await this.subscribe(prepared as AuthorizedSubscription, context, hooks) };
  }

  stats(): SubscriptionStats {
    return { clientSubscriptions: this.clients, sharedStreams: this.streams.size, upstreamSubscriptions: this.options.upstream.active };
  }

  /** Ends every subscription with a SHUTTING_DOWN error and closes the upstream connections. */
  async close(): Promise<void> {
    this.closed = true;
    for (const stream of [...this.streams.values()]) stream.end({ errors: [SHUTTING_DOWN] });
    await this.options.upstream.close();
  }

  private async execute(operation: CheckedOperation, context: GatewayContext): Promise<FormattedExecutionResult> {
    const response = await this.options.execute({ query: operation.query, operationName: operation.operationName, variables: operation.variables }, context);
    if (response.body.kind === 'single') return response.body.singleResult;
    return { errors: [{ message: 'Incremental delivery (@defer, @stream) is not supported here', extensions: { code: 'BAD_REQUEST' } }] };
  }

  private async subscribe(prepared: AuthorizedSubscription, context: GatewayContext, hooks: RunHooks): Promise<EventQueue<FormattedExecutionResult>> {
    const headers = this.sharedHeaders(context);
    const key = this.streamKey(prepared, context, headers);
    let stream: SharedStream | undefined;
    let expiry: NodeJS.Timeout | undefined;
    this.clients += 1;
    const queue = new EventQueue<FormattedExecutionResult>({
      limit: this.options.queueLimit,
      // The adapter closes the client's connection; an error message would queue behind the backlog.
      overflow: 'end',
      onOverflow: () => {
        context.logger.warn({ limit: this.options.queueLimit, operationName: prepared.operation.operationName }, 'subscriber fell behind; dropping it');
        hooks.onOverflow();
      },
      onClose: () => {
        clearTimeout(expiry);
        this.clients -= 1;
        stream?.leave(queue);
      },
    });
    // A subscription lives no longer than the credentials it was started with.
    const expiresAt = context.principal.expiresAt?.getTime();
    if (expiresAt !== undefined) {
      const check = () => {
        const left = expiresAt - Date.now();
        if (left > 0) {
          expiry = setTimeout(check, Math.min(left, MAX_TIMER_MS));
          return;
        }
        context.logger.info({ operationName: prepared.operation.operationName }, 'subscription ended: credentials expired');
        queue.push({ errors: [EXPIRED] });
        queue.end();
      };
      check();
    }
    stream = this.streams.get(key);
    if (stream?.join(queue)) return queue;
    // A new stream, with an identity of its own (stream-identity.ts): it may outlive this subscriber.
    const own = streamContext(context.principal, headers, this.options.logger, this.perSubject(prepared));
    const identityToken = await this.options.identity.signIdentity(identityClaims(own.principal), prepared.plan.primary.serviceName, own.requestId);
    // While signing, the subscriber may have gone, or an identical subscription started a stream.
    if (queue.done) return queue;
    stream = this.streams.get(key);
    if (stream?.join(queue)) return queue;
    stream = this.createStream(key, prepared, own, identityToken);
    this.streams.set(key, stream);
    stream.join(queue);
    return queue;
  }

  /** context: the stream's own (streamContext), never a subscriber's. */
  private createStream(key: string, prepared: AuthorizedSubscription, context: GatewayContext, identityToken: string): SharedStream {
    const { plan, supergraph, operation, authorization } = prepared;
    const { primary } = plan;
    const source = this.options.dataSources.get(primary.serviceName);
    const url = source && 'url' in source && typeof source.url === 'string' ? source.url : undefined;
    const variables: Record<string, unknown> = {};
    for (const name of primary.variableUsages ?? []) {
      if (operation.variables[name] !== undefined) variables[name] = operation.variables[name];
    }
    const stream: SharedStream = new SharedStream({
      subgraph: { name: primary.serviceName, url: url ?? '' },
      request: {
        query: primary.operation,
        operationName: primary.operationName,
        variables,
        extensions: { headers: { ...this.forwardedHeaders(context), [IDENTITY_HEADER]: identityToken } },
      },
      execute: withDenials(
        eventExecutor({ supergraph, plan, operation, context, dataSources: () => this.options.dataSources, format: this.options.format }),
        authorization,
        this.options.format,
      ),
      upstream: this.options.upstream,
      format: this.options.format,
      onFinished: () => {
        if (this.streams.get(key) === stream) this.streams.delete(key);
      },
      logger: context.logger,
    });
    return stream;
  }

  private forwardedHeaders(context: GatewayContext): Record<string, string> {
    const headers: Record<string, string> = {};
    for (const name of this.options.forwardHeaders) {
      const value = context.headers.get(name);
      if (value !== undefined) headers[name] = value;
    }
    headers['x-request-id'] = context.requestId;
    return headers;
  }

  /** The forwarded headers that may change what a subgraph delivers (not the per-request ones), as sent. */
  private sharedHeaders(context: GatewayContext): [string, string][] {
    const headers: [string, string][] = [];
    for (const name of this.options.forwardHeaders) {
      if (PER_REQUEST_HEADERS.has(name)) continue;
      const value = context.headers.get(name);
      if (value !== undefined) headers.push([name, value]);
    }
    return headers;
  }

  /**
   * Subscribers share a stream only when they would get the same results: the same operation (as
   * authorized), variables and headers, and the same authorization (kind, tenant, scopes, agent),
   * which decides what the subgraphs deliver and what the access rules take out.
   */
  private streamKey(prepared: AuthorizedSubscription, context: GatewayContext, headers: readonly (readonly [string, string])[]): string {
    const { operation } = prepared;
    // A resuming subscription begins with a replay of what its client missed: a later identical
    // one would join after that replay and miss it, so each resuming subscription is its own.
    if (resumes(operation)) return `resume:${++this.resumed}`;
    return canonical([
      prepared.supergraph.id,
      operation.operationName ?? null,
      operation.query,
      operation.variables,
      headers,
      authorizationKey(context.principal),
      ...(this.perSubject(prepared) ? [context.principal.subject] : []),
    ]);
  }

  /** Whether the subscription's subgraph delivers per subscriber (presence, messages addressed to them): then its stream is the subject's own. */
  private perSubject(prepared: AuthorizedSubscription): boolean {
    return this.options.perSubjectSubgraphs?.has(prepared.plan.primary.serviceName) ?? false;
  }
}

/** The argument a subscriber passes to resume after the last event it saw (runtime/outbox.ts). */
const RESUME_ARGUMENT = 'afterSequence';

/** Whether a root field of the subscription resumes: afterSequence set to a value, literally or by a variable. */
function resumes(operation: CheckedOperation): boolean {
  for (const selection of operation.operation.selectionSet.selections) {
    if (selection.kind !== Kind.FIELD) continue;
    const argument = selection.arguments?.find((a) => a.name.value === RESUME_ARGUMENT);
    if (!argument) continue;
    const { value } = argument;
    if (value.kind !== Kind.VARIABLE) {
      if (value.kind !== Kind.NULL) return true;
      continue;
    }
    const name = value.name.value;
    const given = operation.variables[name];
    const fallback = operation.operation.variableDefinitions?.find((d) => d.variable.name.value === name)?.defaultValue;
    if (given != null || (given === undefined && fallback !== undefined && fallback.kind !== Kind.NULL)) return true;
  }
  return false;
}

/** The access rules' denials applied to every event's result, their errors formatted like the rest. */
function withDenials(
  execute: (event: FormattedExecutionResult) => Promise<FormattedExecutionResult>,
  authorization: Authorization | undefined,
  format: ErrorFormatter,
): (event: FormattedExecutionResult) => Promise<FormattedExecutionResult> {
  if (!authorization?.rewritten) return execute;
  return async (event) => {
    const denied = applyDenials(await execute(event), authorization);
    const errors = denied.errors?.map((e) => (e instanceof GraphQLError ? format(e.toJSON(), e) : e));
    return { data: denied.data ?? null, ...(errors && errors.length > 0 ? { errors } : {}) };
  };
}
