package main

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"google.golang.org/protobuf/encoding/protojson"

	quirev1 "github.com/quirelog/quire/api/quire/v1"
)

// TestSIGTERMUnderLoadLosesNothingAcknowledged stops the server while writers are mid-request and
// checks, after a restart, that every entry answered 201 is in the log at its index, byte for byte.
func TestSIGTERMUnderLoadLosesNothingAcknowledged(t *testing.T) {
	work := t.TempDir()
	s := startServe(t, work)

	type ack struct {
		index int64
		body  []byte
	}
	// SIGTERM goes out once this many writes are acknowledged, so it lands under load.
	const ackedBeforeStop = 100
	var (
		mu       sync.Mutex
		acks     []ack
		loaded   = make(chan struct{})
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		writeErr = make(chan error, 12)
	)
	client := &http.Client{Timeout: 30 * time.Second}
	for w := range 12 {
		k := newECDSA(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Bounded in count as well as by the stop signal.
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body, err := signHashedRekord(k, []byte(fmt.Sprintf("shutdown %d/%d", w, i)))
				if err != nil {
					writeErr <- err
					return
				}
				resp, err := client.Post(s.baseURL+"/api/v2/log/entries", "application/json", bytes.NewReader(body))
				if err != nil {
					// The server has stopped accepting connections.
					return
				}
				var buf bytes.Buffer
				_, rerr := buf.ReadFrom(resp.Body)
				resp.Body.Close()
				if rerr != nil || resp.StatusCode != http.StatusCreated {
					continue
				}
				tle := &rekorv1.TransparencyLogEntry{}
				if err := protojson.Unmarshal(buf.Bytes(), tle); err != nil {
					writeErr <- fmt.Errorf("a 201 answer does not decode: %w", err)
					return
				}
				mu.Lock()
				acks = append(acks, ack{index: tle.GetLogIndex(), body: tle.GetCanonicalizedBody()})
				if len(acks) == ackedBeforeStop {
					close(loaded)
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-loaded:
	case err := <-writeErr:
		t.Fatal(err)
	case <-time.After(2 * time.Minute):
		t.Fatalf("fewer than %d writes acknowledged within 2 minutes", ackedBeforeStop)
	}
	s.stop()
	close(stop)
	wg.Wait()
	close(writeErr)
	for err := range writeErr {
		t.Error(err)
	}
	t.Logf("SIGTERM sent after %d acknowledged writes; %d acknowledged in all", ackedBeforeStop, len(acks))

	s2 := startServe(t, work)
	for _, a := range acks {
		status, body := s2.get("/quire/v1/entries/" + strconv.FormatInt(a.index, 10))
		if status != http.StatusOK {
			t.Errorf("acknowledged entry %d: status %d after restart: %s", a.index, status, body)
			continue
		}
		e := &quirev1.Entry{}
		if err := protojson.Unmarshal(body, e); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(e.GetTransparencyLogEntry().GetCanonicalizedBody(), a.body) {
			t.Errorf("entry %d differs from what was acknowledged", a.index)
		}
	}
	t.Logf("%d acknowledged entries all present after SIGTERM and restart", len(acks))
	s2.stop()
}
