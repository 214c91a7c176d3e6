/** Messages the user wrote that the gateway has not yet answered for. Each keeps the client message id
 * it was given when typed, through every retry and a page reload, so the gateway (which dedupes by that
 * id) hands it to the agent once, however often the network made us send it. */

import { ApiError, type GatewayApi } from "./api";
import type { OutgoingMessage } from "./types";
import { backoff, readJson, sessionStore, Waiter, writeJson } from "./util";

export type SendState = "queued" | "sending" | "waiting" | "sent" | "failed";

export interface OutboxHooks {
  state(message: OutgoingMessage, state: SendState, error?: ApiError): void;
  reauthorize(): Promise<boolean>;
}

export class Outbox {
  private readonly items: OutgoingMessage[];
  private readonly key: string;
  private pumping = false;
  private stopped = false;
  private readonly waiter = new Waiter();

  constructor(
    private readonly api: GatewayApi,
    private readonly hooks: OutboxHooks,
  ) {
    this.key = `sessionforce:outbox:${api.conversation}`;
    this.items = readJson<OutgoingMessage[]>(sessionStore(), this.key) ?? [];
  }

  /** What a previous page load left unsent, to show again (and send). */
  pending(): readonly OutgoingMessage[] {
    return this.items;
  }

  /** True while the message still waits for the gateway's answer (it will be sent again if need be). */
  has(id: string): boolean {
    return this.items.some((m) => m.id === id);
  }

  add(message: OutgoingMessage): void {
    this.items.push(message);
    this.save();
    this.hooks.state(message, "queued");
    this.pump();
  }

  /** Try again now (the network is back, or the user asked). */
  wake(): void {
    this.waiter.wake();
    this.pump();
  }

  stop(): void {
    this.stopped = true;
    this.waiter.wake();
  }

  pump(): void {
    if (this.pumping || this.stopped) return;
    this.pumping = true;
    void this.run().finally(() => {
      this.pumping = false;
    });
  }

  private save(): void {
    writeJson(sessionStore(), this.key, this.items.length ? this.items : null);
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (this.items.length && !this.stopped) {
      const message = this.items[0];
      if (!navigator.onLine) {
        this.hooks.state(message, "waiting");
        await this.waiter.sleep(30_000);
        continue;
      }
      this.hooks.state(message, "sending");
      try {
        await this.api.send(message);
        this.done(message);
        this.hooks.state(message, "sent");
        attempt = 0;
        continue;
      } catch (caught) {
        // Anything but the gateway's own answer (an unreadable body, an aborted fetch) counts as no answer.
        const err = caught instanceof ApiError ? caught : new ApiError(0, "network", "No readable answer came back.");
        if (err.status === 401 && (await this.hooks.reauthorize())) continue;
        if (!err.retryable) {
          this.done(message);
          this.hooks.state(message, "failed", err);
          attempt = 0;
          continue;
        }
        this.hooks.state(message, "waiting", err);
        const wait = err.retryAfter !== null ? err.retryAfter * 1000 : backoff(attempt);
        attempt++;
        await this.waiter.sleep(wait);
      }
    }
  }

  private done(message: OutgoingMessage): void {
    const index = this.items.indexOf(message);
    if (index >= 0) this.items.splice(index, 1);
    this.save();
  }
}
