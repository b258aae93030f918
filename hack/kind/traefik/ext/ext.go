// Package ext is the extension point Traefik's dynamic configuration embeds (ext.HTTP in its
// HTTP configuration, ext.Router in each router). Traefik's go.mod points it at a nested module
// that its published module zip leaves out; in open-source Traefik both are empty, as here.
package ext

// HTTP is embedded inline in Traefik's HTTP configuration.
type HTTP struct{}

// Router is embedded inline in each Traefik router.
type Router struct{}
