import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(service: string, level: string): Logger {
  return pino({
    name: service,
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Error objects are serialised with their stack into the log only; responses never carry them.
    serializers: { err: pino.stdSerializers.err },
  });
}
