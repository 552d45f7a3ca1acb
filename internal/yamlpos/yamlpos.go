// Package yamlpos reports problems in YAML files the way demur's job specs
// and policy files do: file:line:column: message, with the decoder's Go
// type names put in the file's terms.
package yamlpos

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/goccy/go-yaml"
)

// Error is a problem at a position in a file; Line 0 means the file as a
// whole.
type Error struct {
	File         string
	Line, Column int
	Msg          string
}

// Error formats the error as file:line:column: message.
func (e *Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// Lines formats several errors, one a line.
func Lines(es []*Error) string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// goTypeRE finds the decoder's Go-speak in a type mismatch.
var goTypeRE = regexp.MustCompile(`cannot unmarshal (\S+) into Go (?:struct field \S+ of )?(?:value of )?type (\S+)`)

// FromDecode positions an error from goccy/go-yaml's parser or decoder.
// listOf names what a list holds in this kind of file ("actions").
func FromDecode(file string, err error, listOf string) *Error {
	var ye yaml.Error
	if !errors.As(err, &ye) || ye.GetToken() == nil {
		return &Error{File: file, Line: 1, Column: 1, Msg: err.Error()}
	}
	p := ye.GetToken().Position
	msg := ye.GetMessage()
	if m := goTypeRE.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("wrong type: want %s, got %s", typeName(m[2], listOf), m[1])
	}
	return &Error{File: file, Line: p.Line, Column: p.Column, Msg: msg}
}

func typeName(goType, listOf string) string {
	switch strings.TrimLeft(goType, "*[]") {
	case "float64":
		return "a number"
	case "int", "int64":
		return "an integer"
	case "bool":
		return "true or false"
	case "string":
		if strings.HasPrefix(goType, "[]") {
			return "a list of " + listOf
		}
		return "a string"
	}
	if strings.HasPrefix(goType, "[]") {
		return "a list"
	}
	return "a mapping"
}
