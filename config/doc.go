// Package config owns rollout-guard's Options: their defaults, loading from a
// YAML file (unknown fields are errors), and validation that reports every
// bad field at once with its path. Flags are parsed in cmd/ into these same
// Options; nothing here reads the command line or the environment.
package config
