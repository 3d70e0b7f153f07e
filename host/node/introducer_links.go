package node

import (
	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/introducer"
)

// publisher is one of a storage node's announcers, with the URL of its
// introducer.
type publisher struct {
	url string
	pub *introducer.Publisher
}

// introducerLinks is the node's link to each introducer: the client's
// subscriptions, then the storage server's announcements.
func (n *Node) introducerLinks() []api.IntroducerLink {
	var out []api.IntroducerLink
	add := func(url, role string, st introducer.LinkState) {
		l := api.IntroducerLink{URL: url, Role: role, Connected: st.Connected, Since: st.Since.UTC(), Refused: st.Refused}
		if st.LastError != nil {
			l.LastError = st.LastError.Error()
		}
		out = append(out, l)
	}
	if n.sub != nil {
		for i, st := range n.sub.Links() {
			if i < len(n.subURLs) {
				add(n.subURLs[i], "subscriber", st)
			}
		}
	}
	for _, p := range n.pubs {
		add(p.url, "publisher", p.pub.Link())
	}
	return out
}
