package coord

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/demurhq/demur"
)

// WriteDocument merges the accepted sections in order into one Markdown
// file at path. It writes a temporary file and renames it, so a crash never
// leaves half a document.
func WriteDocument(ctx context.Context, store demur.Store, rp *Report, tasks []demur.Task, path string) error {
	secs := make(map[int][]demur.SectionPayload, len(rp.Sections))
	for _, s := range rp.Sections {
		secs[s.Index] = append(secs[s.Index], s)
	}
	for _, ss := range secs {
		sort.Slice(ss, func(i, j int) bool { return ss[i].Part < ss[j].Part })
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write document: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".document-*.md")
	if err != nil {
		return fmt.Errorf("write document: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	w := bufio.NewWriterSize(tmp, 1<<20)
	if len(tasks) > 0 {
		fmt.Fprintf(w, "# %s\n", tasks[0].DocTitle)
	}
	chapter := 0
	for _, t := range tasks {
		if t.Chapter != chapter {
			chapter = t.Chapter
			fmt.Fprintf(w, "\n## Chapter %d: %s\n", t.Chapter, t.ChapterTitle)
		}
		fmt.Fprintf(w, "\n### %d.%d %s\n\n", t.Chapter, t.Section, t.Title)
		ss := secs[t.Index]
		if len(ss) == 0 {
			fmt.Fprintf(w, "*[section %s missing: not written by any agent]*\n", t.ID)
			continue
		}
		if ss[0].Part == 0 {
			ss = ss[:1] // written whole; parts of an earlier split are superseded
		} else if len(ss) < ss[0].Parts {
			fmt.Fprintf(w, "*[section %s incomplete: %d of %d parts written]*\n", t.ID, len(ss), ss[0].Parts)
		}
		for _, s := range ss {
			body, err := store.Blob(ctx, s.Output)
			if err != nil {
				tmp.Close()
				return fmt.Errorf("section %s: %w", s.Task, err)
			}
			w.Write(body)
			w.WriteByte('\n')
		}
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("write document: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write document: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write document: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write document: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write document: %w", err)
	}
	return nil
}
