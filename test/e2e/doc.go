// Package e2e holds sentinel-proxy's end-to-end tests: real redis-server and redis-sentinel processes
// (package redistest), the proxy run in-process through server.Run or as the built binary, and real
// clients. The tests that check the repository's own files (docs/logging.md against the source, the
// alert rules in contrib/) are here too; they find those files from the repository's top directory.
// There is no non-test code: this file only names the package.
package e2e
