package kv

import (
	"fmt"
	"strings"
	"testing"
)

// evString renders events as "PUT k=v@mod(prev)" / "DEL k@mod(prev)".
func evString(evs []Event) string {
	var parts []string
	for _, e := range evs {
		prev := "-"
		if e.PrevKv != nil {
			prev = fmt.Sprintf("%s@%d", e.PrevKv.Value, e.PrevKv.ModRevision)
		}
		if e.Type == EventPut {
			parts = append(parts, fmt.Sprintf("PUT %s=%s@%d(%s)", e.Kv.Key, e.Kv.Value, e.Kv.ModRevision, prev))
		} else {
			parts = append(parts, fmt.Sprintf("DEL %s@%d(%s)", e.Kv.Key, e.Kv.ModRevision, prev))
		}
	}
	return strings.Join(parts, " ")
}

func TestEventsFromHistory(t *testing.T) {
	h := newHarness(t, Config{})
	h.put("a", "1")  // 2
	h.put("b", "1")  // 3
	h.put("a", "2")  // 4
	h.del("a", "c")  // 5: two events
	h.put("a", "3")  // 6
	h.put("zz", "1") // 7
	tests := []struct {
		name     string
		from     int64
		key, end string
		limit    int
		want     string
		wantNext int64
	}{
		{"one key from the start", 1, "a", "", 0, "PUT a=1@2(-) PUT a=2@4(1@2) DEL a@5(2@4) PUT a=3@6(-)", 8},
		{"one key from a revision", 5, "a", "", 0, "DEL a@5(2@4) PUT a=3@6(-)", 8},
		{"one key with a limit", 1, "a", "", 2, "PUT a=1@2(-) PUT a=2@4(1@2)", 5},
		{"range", 3, "a", "c", 0, "PUT b=1@3(-) PUT a=2@4(1@2) DEL a@5(2@4) DEL b@5(1@3) PUT a=3@6(-)", 8},
		{"all keys", 6, "\x00", "\x00", 0, "PUT a=3@6(-) PUT zz=1@7(-)", 8},
		{"limit never splits a revision", 4, "a", "c", 2, "PUT a=2@4(1@2) DEL a@5(2@4) DEL b@5(1@3)", 6},
		{"missing key", 1, "nope", "", 0, "", 8},
		{"future revision", 9, "a", "", 0, "", 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, next, err := h.s.Events(tt.from, []byte(tt.key), bs(tt.end), tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if got := evString(evs); got != tt.want {
				t.Errorf("events: got %q, want %q", got, tt.want)
			}
			if next != tt.wantNext {
				t.Errorf("next: got %d, want %d", next, tt.wantNext)
			}
		})
	}
}

func TestEventsPagingCoversEverythingOnce(t *testing.T) {
	h := newHarness(t, Config{})
	for i := range 300 {
		h.put(fmt.Sprintf("k%03d", i%37), fmt.Sprint(i))
		if i%50 == 0 {
			h.del("k0", "k1")
		}
	}
	all, _, _ := h.s.Events(1, []byte("k"), []byte("l"), 1<<20)
	var paged []Event
	for from := int64(1); from <= h.s.Revision(); {
		evs, next, err := h.s.Events(from, []byte("k"), []byte("l"), 7)
		if err != nil {
			t.Fatal(err)
		}
		if next <= from {
			t.Fatalf("no progress from %d", from)
		}
		paged, from = append(paged, evs...), next
	}
	if got, want := evString(paged), evString(all); got != want {
		t.Fatalf("paged events differ from one read:\n got %s\nwant %s", got, want)
	}
}

func TestNotifyReportsEachCommandsEvents(t *testing.T) {
	var got []string
	h := newHarness(t, Config{Notify: func(evs []Event) { got = append(got, evString(evs)) }})
	h.put("a", "1")
	h.del("nothing", "")
	h.mustOK(txnCmd(nil, []RequestOp{opPutKV("a", "2"), opPutKV("b", "1")}, nil))
	h.del("a", "\x00")
	want := []string{
		"PUT a=1@2(-)",
		"PUT a=2@3(1@2) PUT b=1@3(-)",
		"DEL a@4(2@3) DEL b@4(1@3)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("notified:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Notified events equal the ones read back from history.
	evs, _, _ := h.s.Events(1, []byte{0}, []byte{0}, 0)
	if evString(evs) != strings.Join(want, " ") {
		t.Fatalf("history: got %q, want %q", evString(evs), strings.Join(want, " "))
	}
}

func TestNotifyMayReadTheStore(t *testing.T) {
	var h *harness
	var seen int64
	h = newHarness(t, Config{Notify: func(evs []Event) { seen = h.s.Revision() }})
	h.put("a", "1")
	if seen != 2 {
		t.Fatalf("revision seen from Notify: got %d, want 2", seen)
	}
}
