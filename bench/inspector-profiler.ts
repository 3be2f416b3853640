// CPU profiles of exactly one measurement: the service runs with --inspect on a local port, and
// the benchmark starts and stops V8's sampling profiler over the DevTools protocol around the
// load. Unlike --cpu-prof (the whole life of the process), start-up and warm-up stay out.
import { WebSocket } from 'ws';

export class InspectorProfiler {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data: Buffer) => {
      const message = JSON.parse(data.toString('utf8')) as { id?: number; result?: unknown; error?: { message: string } };
      if (message.id === undefined) return;
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.error) waiter.reject(new Error(message.error.message));
      else waiter.resolve(message.result);
    });
  }

  /** Connects to the inspector a process opened with --inspect=127.0.0.1:<port>. */
  static async connect(inspectPort: number): Promise<InspectorProfiler> {
    const deadline = Date.now() + 10_000;
    let url: string | undefined;
    while (!url) {
      try {
        const targets = (await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json()) as { webSocketDebuggerUrl?: string }[];
        url = targets[0]?.webSocketDebuggerUrl;
      } catch {
        if (Date.now() > deadline) throw new Error(`no inspector on port ${inspectPort}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    const profiler = new InspectorProfiler(socket);
    await profiler.send('Profiler.enable');
    // 250 µs: enough samples in a few seconds of load to rank functions that take 1 % of the time.
    await profiler.send('Profiler.setSamplingInterval', { interval: 250 });
    return profiler;
  }

  private send(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  async start(): Promise<void> {
    await this.send('Profiler.start');
  }

  /** Stops sampling; the profile in .cpuprofile form (open it in Chrome DevTools or speedscope). */
  async stop(): Promise<unknown> {
    const result = (await this.send('Profiler.stop')) as { profile: unknown };
    return result.profile;
  }

  close(): void {
    this.socket.close();
  }
}
