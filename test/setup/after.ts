// tap `after` script (.taprc): stops the embedded PostgreSQL of the run, if the before script started one.
import { after } from './postgres.js'

process.exitCode = await after()
