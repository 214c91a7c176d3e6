/** The gateway's public HTTP API, as the browser uses it: every call carries the end-user token, and
 * every failure becomes an ApiError that says whether the server answered at all. */

import type { OutgoingMessage, TokenGrant } from "./types";

export class ApiError extends Error {
  /** `status` is 0 when no HTTP answer came back (offline, connection cut): the request may be retried. */
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfter: number | null = null,
    readonly delivery: string | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** True when sending the same request again (same client message id) is the right move: no answer
   * came, or the gateway says the turn was not sent and may be tried again (a turn that may have reached
   * the agent is final: the gateway would answer a retry with the same outcome). */
  get retryable(): boolean {
    if (this.status === 0 || this.status === 429) return true;
    if (this.status === 409) return this.code === "turn_in_progress";
    if (this.delivery === "not_sent") return this.retryAfter !== null;
    return this.status === 503 && this.delivery === null;
  }
}

export async function errorFrom(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let message = response.statusText || `HTTP ${response.status}`;
  let delivery: string | null = null;
  let retryAfter: number | null = null;
  try {
    const body = (await response.json()) as {
      error?: { code?: string; message?: string; delivery?: string; retry_after?: number };
    };
    if (body.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
      delivery = body.error.delivery ?? null;
      retryAfter = typeof body.error.retry_after === "number" ? body.error.retry_after : null;
    }
  } catch {
    // Not JSON (a proxy's error page): the status says enough.
  }
  const header = response.headers.get("Retry-After");
  const seconds = header === null ? NaN : Number(header);
  return new ApiError(response.status, code, message, Number.isFinite(seconds) ? seconds : retryAfter, delivery);
}

/** fetch() that turns "no answer" into ApiError(status 0) and any non-2xx into ApiError(status). */
export async function call(url: string, init: RequestInit): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, { credentials: "omit", cache: "no-store", ...init });
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    throw new ApiError(0, "network", "The gateway could not be reached.");
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export class GatewayApi {
  constructor(
    readonly base: string,
    readonly conversation: string,
    private readonly token: () => string,
  ) {}

  url(path: string): string {
    return new URL(`v1/conversations/${encodeURIComponent(this.conversation)}${path}`, this.base).href;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { Authorization: `Bearer ${this.token()}`, ...extra };
  }

  async send(message: OutgoingMessage, signal?: AbortSignal): Promise<Record<string, unknown>> {
    const response = await call(this.url("/messages"), {
      method: "POST",
      headers: this.headers({ "Content-Type": "application/json", Accept: "application/json" }),
      body: JSON.stringify(message),
      signal,
    });
    return (await response.json()) as Record<string, unknown>;
  }

  /** Opens the events stream after `lastEventId` ("0" = everything retained). */
  async events(lastEventId: string, signal: AbortSignal): Promise<Response> {
    const headers = this.headers({ Accept: "text/event-stream" });
    let path = "/events";
    if (lastEventId === "0") path += "?after=0";
    else headers["Last-Event-ID"] = lastEventId;
    return call(this.url(path), { method: "GET", headers, signal });
  }

  /** Makes sure a session is live, so the agent's greeting arrives (as an event) before the first turn. */
  async start(): Promise<void> {
    await call(this.url("/start"), { method: "POST", headers: this.headers({ "Content-Type": "application/json" }), body: "{}" });
  }

  async end(): Promise<void> {
    await call(this.url(""), { method: "DELETE", headers: this.headers() });
  }

  async feedback(feedbackId: string, feedback: "GOOD" | "BAD"): Promise<void> {
    await call(this.url("/feedback"), {
      method: "POST",
      headers: this.headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ feedback_id: feedbackId, feedback }),
    });
  }

  async refresh(): Promise<TokenGrant> {
    const response = await call(new URL("v1/tokens/refresh", this.base).href, {
      method: "POST",
      headers: this.headers({ "Content-Type": "application/json" }),
      body: "{}",
    });
    return (await response.json()) as TokenGrant;
  }
}
