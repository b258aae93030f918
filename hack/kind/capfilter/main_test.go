package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func write(t *testing.T, path string, v any) {
	raw, _ := json.Marshal(v)
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

func caps(t *testing.T, path string, key ...string) []any {
	raw, _ := os.ReadFile(path)
	var doc map[string]any
	_ = json.Unmarshal(raw, &doc)
	node := any(doc)
	for _, k := range key {
		node = node.(map[string]any)[k]
	}
	return node.([]any)
}

func TestCreateDropsTheCapabilityFromEverySet(t *testing.T) {
	dir := t.TempDir()
	all := []string{"CAP_CHOWN", "CAP_SYS_RESOURCE", "CAP_NET_ADMIN"}
	write(t, filepath.Join(dir, "config.json"), map[string]any{
		"process": map[string]any{"capabilities": map[string]any{"bounding": all, "effective": all, "permitted": all}},
	})
	if err := filter([]string{"--root", "/run/x", "create", "--bundle", dir, "id"}); err != nil {
		t.Fatal(err)
	}
	want := []any{"CAP_CHOWN", "CAP_NET_ADMIN"}
	for _, set := range []string{"bounding", "effective", "permitted"} {
		if got := caps(t, filepath.Join(dir, "config.json"), "process", "capabilities", set); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %v, want %v", set, got, want)
		}
	}
}

func TestExecFiltersTheProcessFile(t *testing.T) {
	dir := t.TempDir()
	process := filepath.Join(dir, "process.json")
	write(t, process, map[string]any{"capabilities": map[string]any{"bounding": []string{"CAP_SYS_RESOURCE"}}})
	if err := filter([]string{"exec", "--process", process, "id"}); err != nil {
		t.Fatal(err)
	}
	if got := caps(t, process, "capabilities", "bounding"); len(got) != 0 {
		t.Errorf("got %v, want none", got)
	}
}

func TestOtherCommandsTouchNothing(t *testing.T) {
	if err := filter([]string{"state", "id"}); err != nil {
		t.Fatal(err)
	}
}
