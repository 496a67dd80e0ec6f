// tap `before` script (.taprc): chooses the PostgreSQL of the run, see test/setup/postgres.ts.
import { before } from './postgres.js'

process.exitCode = await before()
