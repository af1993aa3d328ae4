package commands

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxTracked bounds the per-user limiter map; idle users are forgotten first.
const maxTracked = 10000

// limiter is a token bucket per user identity.
type limiter struct {
	perMinute int
	now       func() time.Time

	mu    sync.Mutex
	users map[string]*userBucket
}

type userBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiter(perMinute int, now func() time.Time) *limiter {
	return &limiter{perMinute: perMinute, now: now, users: map[string]*userBucket{}}
}

// allow takes a token from who's bucket, reporting false when it is empty.
func (l *limiter) allow(who string) bool {
	if l.perMinute < 0 {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.users[who]
	if !ok {
		if len(l.users) >= maxTracked {
			l.forgetIdle(now)
		}
		b = &userBucket{lim: rate.NewLimiter(rate.Every(time.Minute/time.Duration(l.perMinute)), l.perMinute)}
		l.users[who] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}

// forgetIdle drops buckets unused for a minute (they are full again, so
// forgetting them changes nothing), or, if none are, the oldest half.
func (l *limiter) forgetIdle(now time.Time) {
	for who, b := range l.users {
		if now.Sub(b.seen) > time.Minute {
			delete(l.users, who)
		}
	}
	if len(l.users) < maxTracked {
		return
	}
	n := 0
	for who := range l.users { // map order is random: an arbitrary half
		delete(l.users, who)
		if n++; n >= maxTracked/2 {
			break
		}
	}
}
