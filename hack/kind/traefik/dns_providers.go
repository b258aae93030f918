// Replaces lego's generated registry of ACME DNS providers when Traefik is built for the offline
// kind cluster (hack/kind/binaries.sh): the SDKs of many providers are not on the Go module proxy
// these machines reach. ACME is not used there; the providers that need no SDK remain.
package dns

import (
	"fmt"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/providers/dns/exec"
	"github.com/go-acme/lego/v5/providers/dns/httpreq"
	"github.com/go-acme/lego/v5/providers/dns/manual"
)

// NewDNSChallengeProviderByName keeps the signature Traefik calls.
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	switch name {
	case "exec":
		return exec.NewDNSProvider()
	case "httpreq":
		return httpreq.NewDNSProvider()
	case "manual":
		return manual.NewDNSProvider()
	default:
		return nil, fmt.Errorf("unrecognized DNS provider %q: this Traefik build only has exec, httpreq and manual", name)
	}
}
