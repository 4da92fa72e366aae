/**
 * Types for Signal's tag, `signal.js`, served by the collector:
 *
 *     <script src="https://collect.example.com/signal.js" data-write-key="KEY"></script>
 *
 * The tag installs a {@link SignalTag} as `window.signal`, or under the name given by
 * `data-global`.
 */

/** Event properties or user traits: any JSON-serialisable values. */
export type Properties = Record<string, unknown>;

/** A user id, sent as given (a number stays a number). */
export type UserId = string | number;

/** What a call resolves to once its event is stored in the page's queue. */
export interface Queued {
  /** The event's id; the collector drops a second event with the same one. */
  message_id: string;
}

/** What `flush()` resolves to. */
export interface FlushResult {
  /** How many events the collector accepted in this attempt. */
  sent: number;
}

/**
 * The tag's API. Every method returns a promise; the ones that queue an event resolve once it is
 * stored (not when delivered), to `undefined` when nothing was queued (consent withdrawn, or the
 * tag has no write key).
 */
export interface SignalTag {
  /** The tag's version, e.g. `"1.0.0"`. */
  readonly VERSION: string;

  /** Records that the user did something, e.g. `track("Order Completed", { order_id: "ORD-1001" })`. */
  track(event: string, properties?: Properties): Promise<Queued | undefined>;

  /**
   * Records a page view. Its properties always include `path`, `url`, `title`, `referrer` and
   * `search`; those given are added (and win).
   */
  page(name?: string | null, properties?: Properties): Promise<Queued | undefined>;
  page(properties: Properties): Promise<Queued | undefined>;

  /**
   * Remembers who the user is (kept across pages) and sends their traits. Traits need not be
   * repeated: the collector remembers them per user.
   */
  identify(userId?: UserId | null, traits?: Properties): Promise<Queued | undefined>;
  identify(traits: Properties): Promise<Queued | undefined>;

  /**
   * Links `previousId` (by default the current user id, else the anonymous id) to `userId`, which
   * becomes the current user.
   */
  alias(userId: UserId, previousId?: UserId): Promise<Queued | undefined>;

  /** Log-out: forgets the user id and starts a new anonymous id. Sends nothing. */
  reset(): Promise<void>;

  /**
   * `false` deletes the queued events and both ids, and stops the tag (every later call resolves
   * without queuing) until `consent(true)`. Granted unless withdrawn.
   */
  consent(granted: boolean): Promise<void>;

  /** Sends what is queued now; resolves once that attempt is over. */
  flush(): Promise<FlushResult | undefined>;
}

declare global {
  interface Window {
    /** Signal's tag. `data-global="name"` on its `<script>` installs it as `window[name]` instead. */
    signal?: SignalTag;
  }
}
