package yamlpos

import (
	"errors"
	"testing"

	"github.com/goccy/go-yaml"
)

func TestFromDecode(t *testing.T) {
	var v struct {
		N     int      `yaml:"n"`
		Names []string `yaml:"names"`
	}
	err := yaml.UnmarshalWithOptions([]byte("names: [a]\nn: seven\n"), &v, yaml.DisallowUnknownField())
	if err == nil {
		t.Fatal("decoded a string into a list")
	}
	e := FromDecode("f.yaml", err, "names")
	if e.Line != 2 || e.Column != 4 || e.Msg != "wrong type: want an integer, got string" {
		t.Fatalf("got %q", e)
	}
	plain := FromDecode("f.yaml", errors.New("boom"), "x")
	if plain.Error() != "f.yaml:1:1: boom" {
		t.Fatalf("got %q", plain)
	}
	if got := Lines([]*Error{{File: "a", Msg: "whole file"}, e}); got != "a: whole file\nf.yaml:2:4: wrong type: want an integer, got string" {
		t.Fatalf("got %q", got)
	}
}

func TestTypeName(t *testing.T) {
	for goType, want := range map[string]string{"float64": "a number", "*int": "an integer", "[]string": "a list of names",
		"string": "a string", "bool": "true or false", "[]job.Chapter": "a list", "map[string]int": "a mapping"} {
		if got := typeName(goType, "names"); got != want {
			t.Errorf("%s: got %q, want %q", goType, got, want)
		}
	}
}
