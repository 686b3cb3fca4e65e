// Package certs makes and stores the X.509 material rollout-guard serves with
// when cert-manager is not in charge: a self-signed CA and a serving
// certificate signed by it. It is pure crypto and file handling; who rotates
// the files and who publishes the CA bundle is decided by its callers.
package certs
