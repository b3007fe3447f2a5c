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
	var mu sync.Mutex
	var acks []ack
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for w := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := newECDSA(t)
			// Bounded in count as well as by the stop signal.
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Post(s.baseURL+"/api/v2/log/entries", "application/json",
					bytes.NewReader(hashedRekord(t, k, []byte(fmt.Sprintf("shutdown %d/%d", w, i)))))
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
					t.Errorf("a 201 answer does not decode: %v", err)
					return
				}
				mu.Lock()
				acks = append(acks, ack{index: tle.GetLogIndex(), body: tle.GetCanonicalizedBody()})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	s.stop()
	close(stop)
	wg.Wait()
	if len(acks) == 0 {
		t.Fatal("no write was acknowledged before shutdown")
	}

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
