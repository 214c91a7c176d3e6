/** Small helpers shared by the chat's modules. */

/** A random id for a client message, made once per message and kept across retries. Uses
 * getRandomValues, which (unlike randomUUID) also exists on plain-HTTP pages. */
export function newId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... capped at `cap` seconds. */
export function backoff(attempt: number, cap = 10): number {
  const base = Math.min(cap, 0.5 * 2 ** attempt);
  return (base / 2 + Math.random() * (base / 2)) * 1000;
}

/** Resolves after `ms`, or as soon as `wake` is called (by the `online` event, a user action ...). */
export class Waiter {
  private wakeUp: (() => void) | null = null;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done(): void {
        clearTimeout(timer);
        if (self.wakeUp === done) self.wakeUp = null;
        resolve();
      }
      this.wakeUp = done;
    });
  }

  wake(): void {
    this.wakeUp?.();
  }
}

export function readJson<T>(storage: Storage | null, key: string): T | null {
  try {
    const raw = storage?.getItem(key);
    return raw ? (JSON.parse(raw) as T) : null;
  } catch {
    return null;
  }
}

export function writeJson(storage: Storage | null, key: string, value: unknown): void {
  try {
    if (value === null) storage?.removeItem(key);
    else storage?.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or blocked (private mode, third-party iframe): the chat still works, only a reload
    // forgets what was waiting to be sent.
  }
}

/** sessionStorage when the browser lets this page use it (a sandboxed iframe may not). */
export function sessionStore(): Storage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}
