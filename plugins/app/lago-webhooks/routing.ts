/** What routing a Lago webhook needs to know about our organizations. */
export interface OrganizationDirectory {
  /** Ours for this Lago organization id, if known. */
  byLagoOrganizationId: (lagoOrganizationId: string) => Promise<string | null>
  /**
   * Active organizations whose Lago can be asked: those whose id is unknown, and those whose known id may be stale
   * (another Lago since: a new URL or key).
   */
  askable: () => Promise<Array<{ organization: string, lagoOrganizationId: string | null }>>
  /** Records it (learned from that organization's own Lago, with its own key). */
  setLagoOrganizationId: (organization: string, lagoOrganizationId: string) => Promise<void>
  /**
   * The one organization of a single-organization setup whose Lago organization id is not known yet (else null).
   * A webhook its Lago did not tell us about (it lists no webhook endpoint, say) is still routed to it, to be
   * verified with its key; the route records the id once the signature holds.
   */
  soleUnidentified: () => Promise<string | null>
}

/** `adopt`: routed to the sole organization; record lagoOrganizationId for it once the signature verifies. */
export type Routed = { organization: string, adopt?: true } | { unknown: string } | { unavailable: string }

export interface RouterOptions {
  directory: OrganizationDirectory
  /**
   * The Lago organization id of one of ours, asked of its Lago with its key (null when its Lago does not say, e.g.
   * no webhook endpoint yet). Throws when its Lago cannot be reached.
   */
  lagoOrganizationIdOf: (organization: string) => Promise<string | null>
  /** A learned id could not be recorded (another of our organizations holds it already). */
  onLearnError?: (organization: string, lagoOrganizationId: string, err: unknown) => void
  /** Learning asks every unknown organization's Lago: at most this often, so forged ids cannot make us hammer Lago. */
  learnIntervalMs?: number
  now?: () => number
}

/**
 * Which of our organizations a Lago webhook belongs to, from the organization_id in its body. An id not known yet
 * is learned: each active organization asks its own Lago (with its own key, so the answer is that organization's;
 * a known id may be stale when the organization moved to another Lago), and new answers are stored. Only a match is routed; anything else is
 * unknown (the route answers 401 and stores nothing), or unavailable when a Lago that might have known could not be
 * asked (503, so Lago retries).
 */
export class LagoOrganizationRouter {
  readonly #o: RouterOptions
  #lastLearnAt = Number.NEGATIVE_INFINITY
  #learning: Promise<{ failed: string[] }> | null = null

  constructor (options: RouterOptions) {
    this.#o = options
  }

  async route (lagoOrganizationId: string): Promise<Routed> {
    const known = await this.#o.directory.byLagoOrganizationId(lagoOrganizationId)
    if (known !== null) return { organization: known }
    const now = (this.#o.now ?? Date.now)()
    if (this.#learning === null && now - this.#lastLearnAt < (this.#o.learnIntervalMs ?? 30_000)) return await this.#sole(lagoOrganizationId)
    if (this.#learning === null) {
      this.#lastLearnAt = now
      this.#learning = this.#learn().finally(() => { this.#learning = null })
    }
    const { failed } = await this.#learning
    const learned = await this.#o.directory.byLagoOrganizationId(lagoOrganizationId)
    if (learned !== null) return { organization: learned }
    if (failed.length > 0) {
      // Let a retry of Lago's (seconds later) ask again rather than wait for the interval.
      this.#lastLearnAt = Number.NEGATIVE_INFINITY
      return { unavailable: `could not ask the Lago of organization(s) ${failed.join(', ')} which Lago organization they are` }
    }
    return await this.#sole(lagoOrganizationId)
  }

  async #sole (lagoOrganizationId: string): Promise<Routed> {
    const sole = await this.#o.directory.soleUnidentified()
    return sole !== null ? { organization: sole, adopt: true } : { unknown: `Lago organization ${lagoOrganizationId} is none of ours` }
  }

  async #learn (): Promise<{ failed: string[] }> {
    const failed: string[] = []
    for (const { organization, lagoOrganizationId: known } of await this.#o.directory.askable()) {
      let id: string | null
      try {
        id = await this.#o.lagoOrganizationIdOf(organization)
      } catch {
        failed.push(organization)
        continue
      }
      if (id === null || id === known) continue
      try {
        await this.#o.directory.setLagoOrganizationId(organization, id)
      } catch (err) {
        // E.g. another of our organizations already has this Lago organization (two pointing at one): not routable
        // to this one, and no reason to refuse the delivery of the other.
        this.#o.onLearnError?.(organization, id, err)
      }
    }
    return { failed }
  }
}
