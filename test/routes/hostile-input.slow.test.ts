// The property-based hostile-input suite (hostile-input.property.test.ts) with many more runs, for the slow lane.
process.env.HOSTILE_RUNS ??= '150'
await import('./hostile-input.property.test.js')
