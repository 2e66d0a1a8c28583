package kvserver

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// Issue 14, defect 4: a value is bytes. "value" carries UTF-8 text,
// "value_b64" any bytes (standard base64); what "value" cannot carry
// exactly is refused, never replaced with U+FFFD. GET gives "value" when
// the stored bytes are UTF-8 text, else "value_b64".
func TestServerValuesAreBytes(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	tc.leader()
	u := "http://" + tc.servers["kv-0"].ClientAddr()
	b64 := base64.StdEncoding.EncodeToString
	for _, tt := range []struct {
		name, body string
		// the GET after a 200: exactly one of text and b64 is set
		text, b64 string
	}{
		{"text", `{"value":"h\u00e9llo"}`, "héllo", ""},
		{"escaped pair", `{"value":"\ud83d\ude00"}`, "\U0001F600", ""},
		{"literal U+FFFD", `{"value":"\ufffd"}`, "\uFFFD", ""},
		{"empty", `{"value":""}`, "", ""},
		{"b64 binary", `{"value_b64":"` + b64([]byte{0xff, 0, 0xfe}) + `"}`, "", b64([]byte{0xff, 0, 0xfe})},
		{"b64 of text", `{"value_b64":"` + b64([]byte("text")) + `"}`, "text", ""},
		{"b64 empty", `{"value_b64":""}`, "", ""},
		{"b64 of an encoded surrogate", `{"value_b64":"` + b64([]byte{0xed, 0xa0, 0x80}) + `"}`, "", b64([]byte{0xed, 0xa0, 0x80})},
	} {
		if code, out, _ := do(t, http.MethodPut, u+"/kv/k", tt.body, nil); code != 200 {
			t.Errorf("%s: PUT %s: %d %v", tt.name, tt.body, code, out)
			continue
		}
		code, out, _ := do(t, http.MethodGet, u+"/kv/k", "", nil)
		text, hasText := out["value"]
		enc, hasB64 := out["value_b64"]
		switch {
		case code != 200:
			t.Errorf("%s: GET: %d %v", tt.name, code, out)
		case tt.b64 == "" && (!hasText || text != tt.text || hasB64):
			t.Errorf("%s: GET %v; want value %q and no value_b64", tt.name, out, tt.text)
		case tt.b64 != "" && (hasText || !hasB64 || enc != tt.b64):
			t.Errorf("%s: GET %v; want value_b64 %q and no value", tt.name, out, tt.b64)
		}
	}
	// Refused: nothing that "value" cannot carry exactly is stored.
	if code, out, _ := do(t, http.MethodPut, u+"/kv/k", `{"value":"kept"}`, nil); code != 200 {
		t.Fatalf("PUT kept: %d %v", code, out)
	}
	for _, tt := range []struct {
		name, body   string
		code         int
		errCode, say string
	}{
		{"invalid UTF-8 in value", "{\"value\":\"a\xffb\"}", 400, "bad_body", "value_b64"},
		{"invalid UTF-8 elsewhere", "{\"value\":\"a\",\"x\xff\":1}", 400, "bad_body", "UTF-8"},
		{"lone high surrogate", `{"value":"\ud800"}`, 400, "bad_body", "value_b64"},
		{"lone low surrogate", `{"value":"a\uDC00b"}`, 400, "bad_body", "value_b64"},
		{"reversed pair", `{"value":"\ude00\ud83d"}`, 400, "bad_body", "value_b64"},
		{"both", `{"value":"a","value_b64":"YQ=="}`, 400, "bad_body", "not both"},
		{"neither", `{"value":null}`, 400, "bad_body", `{"value": "..."}`},
		{"bad base64", `{"value_b64":"!!"}`, 400, "bad_body", "base64"},
		{"unpadded base64", `{"value_b64":"YQ"}`, 400, "bad_body", "base64"},
		{"b64 too large", `{"value_b64":"` + b64(make([]byte, 65)) + `"}`, 413, "value_too_large", "--max-value-bytes"},
	} {
		code, out, _ := do(t, http.MethodPut, u+"/kv/k", tt.body, nil)
		if code != tt.code || out["code"] != tt.errCode || out["outcome"] != "failed" || !strings.Contains(out["error"].(string), tt.say) {
			t.Errorf("%s: PUT %q: %d %v; want %d %s mentioning %q", tt.name, tt.body, code, out, tt.code, tt.errCode, tt.say)
		}
	}
	// An escaped backslash before "ud800" is not an escape: plain text.
	if code, out, _ := do(t, http.MethodPut, u+"/kv/k", `{"value":"\\ud800"}`, nil); code != 200 {
		t.Fatalf(`PUT "\\ud800": %d %v`, code, out)
	}
	if code, out, _ := do(t, http.MethodGet, u+"/kv/k", "", nil); code != 200 || out["value"] != `\ud800` {
		t.Fatalf(`GET after "\\ud800": %d %v`, code, out)
	}
}

// hasLoneSurrogate finds exactly the JSON strings that encoding/json would
// decode with U+FFFD in place of an escape: random strings of literal
// text, two-byte escapes, and \u escapes of characters, high and low
// surrogates.
func TestHasLoneSurrogate(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 4))
	for n := 0; n < 20000; n++ {
		var b strings.Builder
		b.WriteByte('"')
		lone, pendingHigh := false, false
		for k := rng.IntN(8); k > 0; k-- {
			kind := rng.IntN(6)
			if pendingHigh && kind != 4 {
				lone = true // a high half not followed by a low one
			}
			switch kind {
			case 0:
				b.WriteString([]string{"a", "é", "😀", "ud800", "u"}[rng.IntN(5)])
			case 1:
				b.WriteString([]string{`\\`, `\"`, `\n`, `\/`, `\\u`}[rng.IntN(5)])
			case 2:
				fmt.Fprintf(&b, `\u%04x`, []int{0x41, 0xe9, 0xd7ff, 0xe000, 0xfffe}[rng.IntN(5)])
			case 3:
				fmt.Fprintf(&b, `\u%04X`, 0xd800+rng.IntN(0x400))
			case 4:
				fmt.Fprintf(&b, `\u%04x`, 0xdc00+rng.IntN(0x400))
				if !pendingHigh {
					lone = true
				}
			case 5:
				b.WriteString(`\uD83D\uDE00`) // a pair
			}
			pendingHigh = kind == 3
		}
		if pendingHigh {
			lone = true
		}
		b.WriteByte('"')
		s := b.String()
		if got := hasLoneSurrogate([]byte(s)); got != lone {
			t.Fatalf("hasLoneSurrogate(%s) = %v, want %v", s, got, lone)
		}
		var dec string
		if err := json.Unmarshal([]byte(s), &dec); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if strings.ContainsRune(dec, utf8.RuneError) != lone {
			t.Fatalf("%s decodes to %q: U+FFFD in it %v, lone surrogate %v", s, dec, !lone, lone)
		}
	}
}
