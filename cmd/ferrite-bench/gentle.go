package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// runGentle publishes a handful of simulated sensors at 1 Hz, one per
// shipped format, until ctx ends (or duration passes): enough to watch
// SENSOR.LIST, SENSOR.STATS and the buckets fill up in a demo.
func runGentle(ctx context.Context, broker string, duration time.Duration, stdout, stderr io.Writer) int {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	rc, err := dialRaw(dctx, broker, "ferrite-bench-gentle")
	cancel()
	if err != nil {
		fmt.Fprintln(stderr, "ferrite-bench:", err)
		return 1
	}
	defer rc.close()
	if duration > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, duration)
		defer stop()
	}
	fmt.Fprintf(stdout, "ferrite-bench: gentle mode on %s, 1 Hz; try: mosquitto_rr -t '$ferrite/cmd' -e reply/me -m 'SENSOR.LIST'\n", broker)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := 0; ; i++ {
		now := time.Now()
		phase := float64(now.Unix()%3600) / 3600 * 2 * math.Pi
		temp := 21 + 2*math.Sin(phase) + 0.1*float64(i%3)
		hum := 45 + 5*math.Cos(phase)
		f := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
		msgs := []struct{ topic, payload string }{
			{"sensors/temp-001", f(temp)},
			{"sensors/temp-002", `{"value":` + f(temp-1.5) + `,"unit":"celsius","ts":` + strconv.FormatInt(now.UnixMilli(), 10) + `}`},
			{"zigbee2mqtt/living_room", `{"temperature":` + f(temp+0.4) + `,"humidity":` + f(hum) + `,"battery":97,"linkquality":118,"state":"ON"}`},
			{"kitchen/sensor/temperature/state", f(temp + 1.2)},
			{"tele/plug/SENSOR", `{"Time":"` + now.Format("2006-01-02T15:04:05") + `","ENERGY":{"Power":` + f(40+10*math.Sin(phase*7)) + `,"Voltage":230},"AM2301":{"Temperature":` + f(temp) + `,"Humidity":` + f(hum) + `},"TempUnit":"C"}`},
			{"senml/meter", `[{"bn":"meter-1/","bt":` + strconv.FormatInt(now.Unix(), 10) + `,"n":"voltage","u":"V","v":` + f(229+math.Sin(phase*3)) + `},{"n":"current","u":"A","v":` + f(1.5+0.2*math.Cos(phase*5)) + `}]`},
		}
		for _, m := range msgs {
			rc.publish(m.topic, []byte(m.payload), 0)
		}
		if err := rc.w.Flush(); err != nil {
			fmt.Fprintln(stderr, "ferrite-bench:", err)
			return 1
		}
		select {
		case <-ctx.Done():
			return 0
		case <-tick.C:
		}
	}
}
