package proxy

// traceparent checks a W3C Trace Context traceparent header
// (https://www.w3.org/TR/trace-context/#traceparent-header) and returns it
// in its version-00 form. A header that does not parse is ignored, as the
// recommendation asks: the exchange then starts a trace of its own.
func traceparent(h string) (string, bool) {
	// version "-" trace-id "-" parent-id "-" flags: 2+1+32+1+16+1+2.
	const n = 55
	if len(h) < n || h[2] != '-' || h[35] != '-' || h[52] != '-' {
		return "", false
	}
	version, traceID, parentID, flags := h[:2], h[3:35], h[36:52], h[53:55]
	if !lowerHex(version) || version == "ff" || (version == "00" && len(h) != n) || (len(h) > n && h[n] != '-') {
		return "", false
	}
	if !lowerHex(traceID) || allZero(traceID) || !lowerHex(parentID) || allZero(parentID) || !lowerHex(flags) {
		return "", false
	}
	return "00-" + traceID + "-" + parentID + "-" + flags, true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}
