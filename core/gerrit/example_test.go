package gerrit_test

import (
	"context"
	"fmt"
	"log"

	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
)

// A poll cycle that cannot lose changes: fetch, handle, and only then
// commit the watermark.
func ExamplePoller_Fetch() {
	srv := gerrittest.NewWithOptions(gerrittest.Options{Username: "ductbot", Password: "secret"})
	defer srv.Close()
	srv.CreateChange("wiki", "main", "Add a cache", "alice")

	c, err := gerrit.New(gerrit.Options{URL: srv.URL(), Username: "ductbot", Password: "secret"})
	if err != nil {
		log.Fatal(err)
	}
	p := gerrit.NewPoller(c, gerrit.PollOptions{Projects: []gerrit.ProjectFilter{{Name: "wiki"}}})
	ctx := context.Background()

	b, err := p.Fetch(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, ch := range b.Changes {
		fmt.Println(ch.ID, "patch set", ch.PatchSet, "by", ch.Uploader.Username+":", ch.Subject)
	}
	if err := p.Commit(ctx, b); err != nil {
		log.Fatal(err)
	}
	// Output: wiki~1 patch set 1 by alice: Add a cache
}
