package main

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/transparency-dev/tessera"

	"github.com/quirelog/quire/cmd/internal/cli"
)

// checkWitnessFlags rejects witness settings that cannot work, and logs the policy the log will
// publish under: the quorum as a tree of thresholds, each witness by key name and URL. Only
// witness names and URLs are logged; the log's own key never is. With no policy it only checks
// that no witness flag was given in vain.
func checkWitnessFlags(f *serveFlags, group tessera.WitnessGroup, logger *slog.Logger) error {
	if f.witnessTimeout <= 0 {
		return cli.Usagef("--witness-timeout must be positive")
	}
	if f.witnessPolicy == "" {
		if f.witnessFailOpen {
			logger.Warn("--witness-fail-open has no effect without --witness-policy")
		}
		return nil
	}
	endpoints := group.Endpoints()
	urls := make([]string, 0, len(endpoints))
	for u := range endpoints {
		urls = append(urls, u)
	}
	sort.Strings(urls)
	witnesses := make([]string, 0, len(urls))
	for _, u := range urls {
		witnesses = append(witnesses, endpoints[u].Name()+"="+u)
	}
	mode := "closed: no checkpoint is published until the quorum cosigns it"
	if f.witnessFailOpen {
		mode = "open: a checkpoint short of the quorum is published after the timeout"
	}
	logger.Info("witness policy",
		"file", f.witnessPolicy,
		"quorum", describeWitnessGroup(group),
		"witnesses", strings.Join(witnesses, " "),
		"timeout", f.witnessTimeout.String(),
		"fail", mode)
	if len(endpoints) == 0 {
		logger.Warn("the witness policy names no witness: checkpoints are published uncosigned")
	}
	return nil
}

// describeWitnessGroup renders a policy tree as nested thresholds, e.g. "2 of {a, b, c}", naming
// each witness by its key name (the policy file's own names are not kept by Tessera's parser).
func describeWitnessGroup(g tessera.WitnessGroup) string {
	parts := make([]string, 0, len(g.Components))
	for _, c := range g.Components {
		switch c := c.(type) {
		case tessera.Witness:
			parts = append(parts, c.Key.Name())
		case tessera.WitnessGroup:
			parts = append(parts, describeWitnessGroup(c))
		default:
			parts = append(parts, fmt.Sprintf("%T", c))
		}
	}
	return fmt.Sprintf("%d of {%s}", g.N, strings.Join(parts, ", "))
}
