/** Keeps one events stream (GET /v1/conversations/{id}/events) attached: re-attaches after any drop
 * with Last-Event-ID, so the gateway replays exactly what was missed; the chat dedupes by event id. */

import { ApiError, type GatewayApi } from "./api";
import { SseParser } from "./sse";
import type { GatewayEvent } from "./types";
import { backoff, Waiter } from "./util";

export type LinkStatus = "connecting" | "online" | "offline" | "closed";

/** The gateway sends ": ka" every 15 s; silence for longer than this means a half-open connection. */
const SILENCE_MS = 40_000;

export interface StreamHooks {
  event(event: GatewayEvent): void;
  /** A frame without an id: about the stream, not part of the conversation's log. */
  notice(type: string, data: Record<string, unknown>): void;
  status(status: LinkStatus, error?: ApiError): void;
  /** Asked after a 401: resolves true once a fresh token is in hand. */
  reauthorize(): Promise<boolean>;
}

export class EventStream {
  /** Id of the last event received: where the next attach resumes. */
  cursor = "0";
  private stopped = false;
  private controller: AbortController | null = null;
  private readonly waiter = new Waiter();

  constructor(
    private readonly api: GatewayApi,
    private readonly hooks: StreamHooks,
  ) {}

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.controller?.abort();
    this.waiter.wake();
  }

  /** Drop the current connection (if any) and attach again now. */
  reattach(): void {
    this.controller?.abort();
    this.waiter.wake();
  }

  /** The browser says it is offline: stop waiting on a connection that cannot deliver. */
  pause(): void {
    this.controller?.abort();
    this.hooks.status("offline");
  }

  private async loop(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      if (!navigator.onLine) {
        this.hooks.status("offline");
        await this.waiter.sleep(30_000);
        continue;
      }
      this.hooks.status("connecting");
      const controller = new AbortController();
      this.controller = controller;
      try {
        const response = await this.api.events(this.cursor, controller.signal);
        this.hooks.status("online");
        attempt = 0;
        await this.read(response, controller);
      } catch (err) {
        if (this.stopped) return;
        if (err instanceof ApiError && err.status === 401) {
          if (await this.hooks.reauthorize()) continue;
          this.hooks.status("closed", err);
          return;
        }
        if (err instanceof ApiError && (err.status === 403 || err.status === 404 || err.status === 400)) {
          this.hooks.status("closed", err);
          return;
        }
      }
      if (this.stopped) return;
      this.hooks.status(navigator.onLine ? "connecting" : "offline");
      await this.waiter.sleep(controller.signal.aborted && attempt === 0 ? 50 : backoff(attempt));
      attempt++;
    }
  }

  private async read(response: Response, controller: AbortController): Promise<void> {
    if (!response.body) return;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser();
    let watchdog = setTimeout(() => controller.abort(), SILENCE_MS);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        clearTimeout(watchdog);
        watchdog = setTimeout(() => controller.abort(), SILENCE_MS);
        for (const raw of parser.feed(value)) {
          const id = raw.id === null ? NaN : Number(raw.id);
          if (raw.event === "reconnect") {
            // The server is going away: come back at once (to another worker).
            controller.abort();
            return;
          }
          let data: Record<string, unknown>;
          try {
            data = JSON.parse(raw.data) as Record<string, unknown>;
          } catch {
            continue; // the stream's opening "retry:" frame, or something this chat cannot read
          }
          if (!Number.isFinite(id)) {
            // Not a log event (e.g. history.truncated): shown, never counted as a position.
            this.hooks.notice(raw.event, data);
            continue;
          }
          if (id > Number(this.cursor)) this.cursor = String(id);
          this.hooks.event({ id, type: raw.event, data });
        }
      }
    } finally {
      clearTimeout(watchdog);
      reader.cancel().catch(() => undefined);
    }
  }
}
