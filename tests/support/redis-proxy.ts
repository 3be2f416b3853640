// A TCP relay in front of the shared Redis server, so a test can take Redis away from the
// clients it starts (and only from them: other suites keep using the server) and give it back.
import { connect, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface RedisProxy {
  /** redis://127.0.0.1:<proxy port> */
  url: string;
  /** Drops every connection through the proxy; until restore(), new ones are accepted and never answered. */
  cut(): void;
  /** Lets connections through again (the ones held while cut are dropped: their clients reconnect). */
  restore(): void;
  /** Everything clients sent, as text (RESP commands). */
  sent(): string;
  close(): Promise<void>;
}

export async function startRedisProxy(redisUrl: string): Promise<RedisProxy> {
  const target = new URL(redisUrl);
  const targetPort = Number(target.port || 6379);
  const targetHost = target.hostname;
  let down = false;
  let sent = '';
  const live = new Set<Socket>();
  const held = new Set<Socket>();
  const server = createServer((client) => {
    client.on('error', () => client.destroy());
    if (down) {
      held.add(client);
      client.on('close', () => held.delete(client));
      return;
    }
    const upstream = connect(targetPort, targetHost);
    live.add(client);
    live.add(upstream);
    client.on('data', (chunk: Buffer) => (sent += chunk.toString('utf8')));
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      live.delete(client);
      live.delete(upstream);
    };
    client.on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    cut() {
      down = true;
      for (const s of live) s.destroy();
    },
    restore() {
      down = false;
      for (const s of held) s.destroy();
    },
    sent: () => sent,
    async close() {
      for (const s of [...live, ...held]) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
