package controller

import "encoding/json"

// equalJSON compares two values by their JSON form (what the API server
// stores).
func equalJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
