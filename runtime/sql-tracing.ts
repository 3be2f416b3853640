// A span per SQL statement (db.query.text, db.system.name), made where kysely hands the compiled
// statement to the driver: kysely plugins see the query tree, not its SQL, and never see failures.
import type { CompiledQuery, DatabaseConnection, Dialect, Driver } from 'kysely';
import { SpanKind, tracingEnabled, withSpan } from './tracing.ts';

const traced = new WeakSet<DatabaseConnection>();

/** The dialect itself when tracing is off (nothing in the statement path changes). */
export function tracedDialect(dialect: Dialect, system: 'sqlite' | 'postgresql'): Dialect {
  if (!tracingEnabled()) return dialect;
  return {
    createAdapter: () => dialect.createAdapter(),
    createIntrospector: (db) => dialect.createIntrospector(db),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createDriver: () => tracedDriver(dialect.createDriver(), system),
  };
}

function tracedDriver(driver: Driver, system: string): Driver {
  const acquireConnection = driver.acquireConnection.bind(driver);
  // Patched in place rather than wrapped: drivers release and reuse their own connection objects.
  driver.acquireConnection = async () => {
    const connection = await acquireConnection();
    if (!traced.has(connection)) {
      traced.add(connection);
      const executeQuery = connection.executeQuery.bind(connection);
      connection.executeQuery = <R>(query: CompiledQuery) =>
        withSpan(spanName(query.sql), { kind: SpanKind.CLIENT, attributes: { 'db.system.name': system, 'db.query.text': query.sql } }, () =>
          executeQuery<R>(query),
        );
    }
    return connection;
  };
  return driver;
}

/** "SELECT", "INSERT"...: the statement's first word, as OTel's database conventions name spans. */
function spanName(text: string): string {
  const word = /^\s*([A-Za-z]+)/.exec(text)?.[1];
  return word ? word.toUpperCase() : 'SQL';
}
