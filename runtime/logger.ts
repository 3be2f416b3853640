import { pino, type Logger } from 'pino';
import { traceLogFields } from './tracing.ts';

export type { Logger };

export function createLogger(service: string, level: string): Logger {
  return pino({
    name: service,
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Error objects are serialised with their stack into the log only; responses never carry them.
    serializers: { err: pino.stdSerializers.err },
    // trace_id/span_id of the active span (nothing when tracing is off), to find a line's trace.
    mixin: traceLogFields,
  });
}
