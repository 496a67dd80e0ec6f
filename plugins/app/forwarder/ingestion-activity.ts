/** Whether ingestion committed within the last `windowMs`, from its commit notifications. */
export class IngestionActivity {
  #lastCommitAt = Number.NEGATIVE_INFINITY

  constructor (private readonly windowMs: number, private readonly now: () => number = Date.now) {}

  committed (): void {
    this.#lastCommitAt = this.now()
  }

  get writing (): boolean {
    return this.now() - this.#lastCommitAt < this.windowMs
  }
}
