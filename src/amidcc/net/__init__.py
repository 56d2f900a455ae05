"""Network plumbing shared by the gateway and the simulators.

``mqtt``: an MQTT client on the Twisted reactor (paho-mqtt's external loop, no threads).
``broker``: a real broker (mosquitto, or amqtt) as a child process on a loopback port.
Neither module imports the global reactor.
"""
