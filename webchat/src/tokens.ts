/** Keeps the end-user token fresh: refreshes it at half its remaining life (as Direct Line does), again
 * on demand after a 401, and falls back to the embedding site's token source once it can no longer be
 * refreshed (a laptop that slept past the expiry). */

import { ApiError } from "./api";
import type { TokenGrant } from "./types";

export type TokenSource = (conversation: string) => Promise<TokenGrant>;

export class TokenKeeper {
  private grant: TokenGrant;
  private expiresAt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private inFlight: Promise<boolean> | null = null;
  private stopped = false;

  constructor(
    grant: TokenGrant,
    private readonly refreshCall: () => Promise<TokenGrant>,
    private readonly fallback: TokenSource | null,
    private readonly onChange: (grant: TokenGrant) => void,
  ) {
    this.grant = grant;
    this.accept(grant);
  }

  get token(): string {
    return this.grant.token;
  }

  get conversation(): string {
    return this.grant.conversations[0];
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
  }

  /** Refresh now (single flight). Resolves true when a usable token is in hand. */
  renew(): Promise<boolean> {
    this.inFlight ??= this.doRenew().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  /** Called when the page wakes up or comes back online: timers may not have fired while asleep. */
  checkDue(): void {
    if (!this.stopped && Date.now() >= this.dueAt()) void this.renew();
  }

  private dueAt(): number {
    const left = this.expiresAt - Date.now();
    return Date.now() + Math.max(0, left / 2);
  }

  private accept(grant: TokenGrant): void {
    this.grant = grant;
    // Relative lifetime first: the browser's clock may disagree with the gateway's.
    if (typeof grant.expires_in === "number") this.expiresAt = Date.now() + grant.expires_in * 1000;
    else if (grant.expires_at) this.expiresAt = Date.parse(grant.expires_at);
    else this.expiresAt = Date.now() + 300_000;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.stopped) return;
    const delay = Math.max(1000, (this.expiresAt - Date.now()) / 2);
    this.timer = setTimeout(() => void this.renew(), Math.min(delay, 2 ** 31 - 1));
  }

  private async doRenew(): Promise<boolean> {
    for (let attempt = 0; attempt < 3 && !this.stopped; attempt++) {
      try {
        const fresh = await this.refreshCall();
        this.accept(fresh);
        this.onChange(fresh);
        return true;
      } catch (err) {
        if (err instanceof ApiError && (err.status === 401 || err.status === 403)) break;
        if (Date.now() >= this.expiresAt) break;
        await new Promise((r) => setTimeout(r, 1000 * (attempt + 1)));
      }
    }
    if (this.fallback && !this.stopped) {
      try {
        const fresh = await this.fallback(this.conversation);
        this.accept(fresh);
        this.onChange(fresh);
        return true;
      } catch {
        // Falls through: the chat shows that it lost its authorisation.
      }
    }
    if (!this.stopped && Date.now() < this.expiresAt) {
      // Still valid: try again in a while.
      this.timer = setTimeout(() => void this.renew(), 5000);
      return true;
    }
    return false;
  }
}
