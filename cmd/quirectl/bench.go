package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/quirelog/quire/api/client"
	"github.com/quirelog/quire/api/client/loadgen"
	"github.com/quirelog/quire/cmd/internal/cli"
)

func runBench(ctx context.Context, inv *cli.Invocation, args []string) error {
	fs := inv.Flags()
	var cfg loadgen.Config
	var keyType string
	var asJSON, strict bool
	var recordPath string
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:3000", "base `URL` of the Rekor v2 compatible log; the URLs of several front ends of one log, separated by commas, get the requests in turn")
	fs.IntVar(&cfg.Workers, "workers", loadgen.DefaultWorkers, "concurrent requests (closed loop), or the most in flight with --rate")
	fs.DurationVar(&cfg.Duration, "duration", loadgen.DefaultDuration, "how long to send requests")
	fs.Float64Var(&cfg.Rate, "rate", 0, "offered arrivals per second (open loop); 0 for closed-loop workers")
	fs.Float64Var(&cfg.DupFraction, "dup-fraction", 0, "share of requests that repeat an earlier one (expect 409)")
	fs.StringVar(&keyType, "key-type", string(client.KeyECDSAP256), "signing key `TYPE`: ecdsa-p256, ecdsa-p384, ecdsa-p521, rsa-2048, rsa-3072, rsa-4096, ed25519ph")
	fs.IntVar(&cfg.Keys, "keys", 1, "number of distinct signing keys")
	fs.IntVar(&cfg.PoolSize, "pool", 0, "requests to sign before the clock starts (0: sized from rate and duration)")
	fs.DurationVar(&cfg.RequestTimeout, "timeout", loadgen.DefaultRequestTimeout, "timeout of one request")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fs.StringVar(&recordPath, "record", "", "write a JSON line per 201 (log_index, canonicalized_body, tree_size, root_hash, checkpoint) to `FILE`")
	fs.BoolVar(&strict, "strict", false, "exit 1 when no entry was created or an unexpected error occurred")
	if err := fs.Parse(args); err != nil {
		return err
	}
	kt, err := client.ParseKeyType(keyType)
	if err != nil {
		return cli.Usagef("--key-type: %w", err)
	}
	cfg.KeyType = kt
	var (
		rec     *loadgen.Recorder
		recFile *os.File
	)
	if recordPath != "" {
		f, err := os.OpenFile(recordPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		recFile, rec = f, loadgen.NewRecorder(f)
		cfg.OnResult = rec.Record
	}
	rep, err := loadgen.Run(ctx, cfg)
	if errors.Is(err, loadgen.ErrInvalidConfig) {
		return &cli.UsageError{Err: err}
	}
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(inv.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("writing JSON report: %w", err)
		}
	} else if err := rep.WriteText(inv.Stdout); err != nil {
		return err
	}
	if rec != nil {
		written, malformed, err := rec.Flush()
		if err != nil {
			return err
		}
		if err := recFile.Close(); err != nil {
			return fmt.Errorf("closing %s: %w", recordPath, err)
		}
		if malformed > 0 {
			return fmt.Errorf("%d of %d answers with 201 were not a TransparencyLogEntry", malformed, malformed+written)
		}
	}
	if strict && (rep.Created == 0 || rep.UnexpectedErrors() > 0) {
		return fmt.Errorf("%d entries created, %d unexpected errors", rep.Created, rep.UnexpectedErrors())
	}
	return nil
}
